"""The tokenizer benchmark's two caption sets, built deterministically from a seed (no downloaded data).

- ``vocabulary_captions``: zero-shot prompts ("a photo of a {label}.") and 20-40-word sentences whose words follow a
  Zipf law over the ~20,000 most frequent whole words of CLIP's own BPE vocabulary (merge order follows corpus
  frequency); about one caption in twelve holds non-ASCII text and one in thirty-five an HTML entity or a bare ``&``.
  Every sentence word is a whole-word token, which is what clip-sdk's chunk table starts with.
- ``realistic_captions``: captions as the web writes them: alt texts, social posts, product listings, stock-photo
  titles and descriptions, with people's names, places, dates, times, prices, sizes, file names and scores (fresh
  numbers in every caption), misspellings (common ones and random typos), elongated words, hashtags, emoji, curly
  quotes, mojibake and HTML entities; about one caption in eight in another Latin-script language (accents,
  diacritics) and one in six in a non-Latin script (Chinese, Japanese, Korean, Cyrillic, Arabic, Hebrew, Devanagari,
  Greek, Thai, Tamil). Many of their chunks are new to every tokenizer's cache.
"""

# ruff: noqa: RUF001 - look-alike characters are caption data here

from __future__ import annotations

import gzip
import random
from importlib.resources import files

__all__ = ["realistic_captions", "vocabulary_captions"]

LABELS = (  # noqa: SIM905 - a long label list reads better as one string
    "tench goldfish shark hen ostrich goldfinch robin jay magpie chickadee eagle vulture owl salamander newt frog "
    "turtle gecko iguana chameleon lizard alligator crocodile dinosaur snake python cobra scorpion spider tick "
    "centipede peacock quail parrot macaw toucan hornbill hummingbird jellyfish coral snail slug lobster crab "
    "flamingo pelican penguin albatross whale dolphin seal chihuahua beagle bloodhound whippet terrier retriever "
    "spaniel collie rottweiler boxer bulldog husky dalmatian pug poodle wolf coyote dingo hyena fox cat tiger lion "
    "cheetah bear mongoose meerkat beetle ladybug fly bee ant grasshopper cricket cockroach mantis dragonfly "
    "butterfly starfish urchin rabbit hamster porcupine squirrel beaver guinea pig horse zebra pig boar hippopotamus "
    "ox bison ram gazelle camel llama weasel otter skunk badger armadillo orangutan gorilla chimpanzee baboon lemur "
    "elephant panda airliner ambulance backpack bakery balloon banjo barbell barn barrel baseball basketball bathtub "
    "beacon beaker bicycle binoculars birdhouse bookcase bottlecap bucket buckle cab canoe cardigan carousel castle "
    "catamaran cello chainsaw chest church cinema cleaver cliff dwelling cocktail shaker computer keyboard crane "
    "desk dishwasher drum dumbbell envelope espresso maker fire engine flagpole flute football helmet forklift "
    "fountain golf ball gondola gown guillotine hammer harmonica harp hatchet jeep jigsaw puzzle kimono ladle "
    "lampshade laptop lawn mower lighthouse limousine lipstick mailbox maraca marimba mask microphone microwave "
    "minivan mitten monitor mosque motor scooter mountain bike mousetrap obelisk oboe ocarina odometer organ "
    "paddle paintbrush pajamas palace parachute park bench parking meter passenger car pencil perfume piano "
    "pickup truck pinwheel pirate ship pizza plow pole police van poncho pool table printer prison projector "
    "puck racket radiator radio refrigerator revolver rifle rocking chair rugby ball saxophone scoreboard screen "
    "seashore shield shoji skyscraper sleeping bag slot snorkel snowmobile sombrero spatula sports car stopwatch "
    "stove strainer streetcar stretcher suit sunglasses suspension bridge swab sweatshirt swing syringe tank "
    "teapot teddy bear television tennis ball thatched roof throne toaster toilet seat torch totem pole tractor "
    "traffic light trailer truck tray trench coat tricycle trimaran tripod trolleybus trombone tub turnstile "
    "typewriter umbrella unicycle upright piano vacuum vase vault violin volleyball waffle iron wall clock wallet "
    "wardrobe warplane washbasin water bottle water tower whistle wig windsor tie wine bottle wok wooden spoon "
    "yawl yurt comic book crossword street sign guacamole consomme trifle ice cream pretzel cheeseburger hotdog "
    "mashed potato cabbage broccoli cauliflower zucchini cucumber artichoke mushroom strawberry orange lemon fig "
    "pineapple banana jackfruit pomegranate hay carbonara chocolate sauce dough meatloaf burrito espresso cup "
    "eggnog volcano valley geyser sandbar coral reef lakeside promontory daisy corn acorn hip buckeye"
).split()
UNICODE_LABELS = (
    "café", "piñata", "jalapeño", "crème brûlée", "smörgåsbord", "façade", "açaí bowl", "São Paulo skyline",
    "Zürich tram", "Ångström ruler", "rosé wine", "東京タワー", "寿司", "김치", "Москва", "αλεπού", "🐶", "🍕 slice",
)  # fmt: skip
TEMPLATES = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a bright photo of a {}.",
    "a photo of a clean {}.", "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "the plastic {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a pixelated photo of the {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "itap of a {}.",
    "a photo of the large {}.", "a photo of a small {}.", "a toy {}.", "art of the {}.", "a cartoon {}.",
    "a {} in a video game.", "This is a photo of a {}", "A PHOTO OF A {}.",
)  # fmt: skip
NAMES = ("New York", "Paris", "London", "iPhone", "NASA", "Mary", "Tokyo", "USA", "TV", "BBC", "McDonald's")
UNICODE_BITS = (
    "café", "naïve", "résumé", "“quoted”", "it’s", "don’t", "—", "–", "…", "°C", "€5", "£10", "™", "®", "½", "×",
    "São", "Zoë", "über", "niño", "Ελλάδα", "日本語", "中文", "한국어", "🙂", "😂", "🔥", "🎉", "❤️", "\u00a0",
)  # fmt: skip
ENTITIES = ("&amp;", "&quot;", "&#39;", "&lt;3", "&gt;", "&nbsp;", "&eacute;", "&#8217;", "&hellip;", "&amp;amp;")
ATTACHED = (",", ",", ",", ".", "!", "?", ";", ":", "'s", "s", "...")
INSERTED = ("-", "(2019)", "#travel", "@home", "3", "42", "1080p", "2x", "$19.99", "don't", "it's", "we're", "I'm")


def _common_words(count: int) -> list[str]:
    """The most frequent whole words of CLIP's BPE vocabulary (merges made in order of corpus frequency)."""
    data = (files("clip_encoders_text") / "data" / "bpe_simple_vocab_16e6.txt.gz").read_bytes()
    words: list[str] = []
    for line in gzip.decompress(data).decode("utf-8").split("\n")[1:48895]:
        word = line.replace(" ", "")
        if word.endswith("</w>") and word[:-4].isascii() and word[:-4].isalpha() and len(word) > 5:
            words.append(word[:-4])
            if len(words) == count:
                break
    return ["a", "i", *words]


def vocabulary_captions(n: int, seed: int = 0) -> list[str]:
    """N captions: 35% prompts, 65% 20-40-word sentences of CLIP's whole words (Zipf-distributed); some unicode and
    HTML entities."""
    rng = random.Random(seed)
    vocabulary = _common_words(20_000)
    weights = [1.0 / (rank + 2.7) for rank in range(len(vocabulary))]
    cumulative = [0.0]
    for weight in weights:
        cumulative.append(cumulative[-1] + weight)
    cumulative.pop(0)
    captions = []
    for _ in range(n):
        if rng.random() < 0.35:
            label = rng.choice(UNICODE_LABELS) if rng.random() < 0.06 else rng.choice(LABELS)
            captions.append(rng.choice(TEMPLATES).format(label))
            continue
        words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(20, 40))
        for _ in range(rng.randint(0, 4)):
            at = rng.randrange(len(words))
            words[at] += rng.choice(ATTACHED)
        for pool, share in ((NAMES, 0.25), (INSERTED, 0.3), (UNICODE_BITS, 0.1), (ENTITIES, 0.03), (("&",), 0.015)):
            if rng.random() < share:
                words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rng.choice((".", ".", ".", "!", ""))
        if rng.random() < 0.02:
            text = f"  {text.replace(' ', '   ', 3)} \t"
        captions.append(text)
    return captions


# --- realistic captions: word lists, fields with fresh values, and noise ------------------------------------------

FIRST_NAMES = (
    "Emma", "Liam", "Olivia", "Noah", "Sophia", "Mateo", "Aaliyah", "Oluwaseun", "Siobhan", "Niamh", "Chloé", "José",
    "François", "Zoë", "Björn", "Søren", "Małgorzata", "Wojciech", "Hiroshi", "Yuki", "Xiaoming", "Priya", "Aarav",
    "Fatima", "Mohammed", "Dmitri", "Anastasia", "Chidi", "Ngozi", "Keanu", "Giulia", "Jürgen", "Thandiwe", "Declan",
    "Kayleigh", "Jaxon", "Brayden", "Mackenzie", "Renée", "Seán", "Ximena", "Oksana", "Tupac", "Ayşe", "Đorđe",
)  # fmt: skip
SURNAMES = (
    "Smith", "García", "Müller", "O'Connor", "McAllister", "Kowalski", "Nakamura", "Okafor", "van der Berg",
    "Papadopoulos", "Ivanova", "Sánchez", "Østergaard", "Nguyen", "Hernández", "Schröder", "Abdullah", "Patel", "Kim",
    "Rossi", "Dubois", "Jørgensen", "Fitzgerald", "Wiśniewski", "Tanaka", "Mbeki", "Al-Rashid", "Yılmaz", "Novák",
)  # fmt: skip
PLACES = (
    "Reykjavík", "São Paulo", "Kraków", "Zürich", "Chiang Mai", "Marrakesh", "Cape Town", "Lake Tahoe", "Yosemite",
    "Ho Chi Minh City", "Düsseldorf", "Montréal", "Bengaluru", "Wellington", "Banff", "Málaga", "Tromsø", "Kyoto",
    "Brooklyn", "Santorini", "Cusco", "Queenstown", "Dubrovnik", "Hallstatt", "Oaxaca", "Zanzibar", "Edinburgh",
    "Austin, TX", "Portland, OR", "Nairobi", "Łódź", "Bogotá", "St. John's", "Llanfairpwllgwyngyll",
)  # fmt: skip
BRANDS = ("Nike", "IKEA", "Samsung", "Levi's", "KitchenAid", "LEGO", "Canon", "Patagonia", "Le Creuset", "Dyson")
PRODUCTS = (
    "running shoes", "sofa bed", "4K Smart TV", "slim-fit jeans", "stand mixer", "building set", "DSLR camera",
    "fleece jacket", "dutch oven", "cordless vacuum", "wireless earbuds", "hiking backpack", "coffee table",
)  # fmt: skip
COLORS = ("Black", "Navy Blue", "Rose Gold", "Olive", "Charcoal Grey", "Off-White", "Burgundy", "Teal", "Sand")
ADJECTIVES = (
    "beautiful", "cozy", "rustic", "modern", "vintage", "stunning", "tiny", "huge", "abandoned", "colorful",
    "minimalist", "misty", "golden", "snowy", "crowded", "quiet", "hand-painted", "sun-drenched", "moody",
)  # fmt: skip
PLACES_IN = (
    "cabin", "kitchen", "beach", "street", "market", "lighthouse", "bridge", "garden", "waterfall", "cathedral",
    "living room", "harbor", "mountain lake", "vineyard", "train station", "bakery", "rooftop bar", "farmhouse",
)  # fmt: skip
ANIMALS = ("golden retriever", "tabby cat", "corgi", "red fox", "barn owl", "sea turtle", "husky puppy", "alpaca")
EVENTS = ("wedding", "birthday party", "graduation", "road trip", "baby shower", "marathon", "concert", "reunion")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip
MISSPELLINGS = (
    "definately", "recieve", "seperate", "occured", "untill", "wierd", "beatiful", "restaraunt", "accomodation",
    "tommorow", "goverment", "neccessary", "brocoli", "buisness", "calender", "adress", "wich", "alot", "prolly",
    "tho", "sooo", "cuuute", "yummmy", "loooove", "omg", "gorgous", "vaccum", "jewlery", "ur",
)  # fmt: skip
EMOJI = ("😍", "🔥", "🎉", "❤️", "😂", "🌅", "🐶", "☕", "✨", "👍🏽", "🇫🇷", "🙏", "🎂", "👋", "💯", "🤔")
HASHTAGS = ("travel", "instagood", "foodporn", "nofilter", "tbt", "wanderlust", "ootd", "dogsofinstagram", "sunset")
MOJIBAKE = ("cafÃ©", "donâ€™t", "Ã¼ber", "naÃ¯ve", "â€œgreatâ€\x9d", "MÃ¼nchen")
QUOTES = ("Not all those who wander are lost", "Carpe diem", "Live, laugh, love", "Less is more")

ENGLISH = (
    "{name} and {first} at {place}, {date}",
    "Stock Photo - {Adj} {place_in} in {place} at sunset",
    "{brand} {product} - {color} - Size {size} | {price} Free Shipping",
    "IMG_{d4}.JPG",
    "DSC{d5} ({n}) copy.jpg",
    "{Adj} {place_in} in {place} {emoji} #{tag} #{tag}",
    "{first}'s {nth} birthday party!!! {emoji}{emoji}",
    "{Event} of {first} & {first} — {month} {day}, {year}",
    "Vintage {decade}s {product} for sale, {price} OBO",
    "{n} bedroom house for sale in {place}: {thousands} sq ft, asking {big_price}",
    "Close-up of a {animal} sleeping on a {place_in} bench, {time}",
    "Map of {place} (c. {year})",
    "Temp {temp}°C / {temp}°F at {time} in {place}",
    "My {animal} {first} (age {n}) waiting for treats lol {emoji}",
    "Q{q} {year} sales up {pct}% y/y, says CEO {name}",
    "“{quote}” — {name}, {year}",
    "{name} scores in the {nth} minute ({n}-{n}) vs. {place} FC",
    "Photo by {name} on Unsplash",
    "{Adj} {place_in} w/ {product}, approx. {n}{n}x{n}{n} cm, {price}",
    "{product} {color} {d4}-{d4}-{d4} SKU#{d6}",
    "Order #{d6} shipped {date}: {brand} {product} x{n}",
    "A {adj} {place_in} in {place} with a {animal} in the foreground, taken by {name} on {date} at {time}. The "
    "{adj} light and {adj} sky make it one of the most {adj} places I've seen in {year}; we paid {price} for entry "
    "and stayed {n} nights at a {adj} {place_in} nearby.",
    "{month} {day}, {year}: {n}{n},{d3} runners finished the {place} {race} in {temp}°C heat",
    "ROAD TRIP {year}!!! {place} -> {place} -> {place} ({thousands} km) {emoji}",
    "{first} {first} {first} {first} — name this {animal}?? {emoji}",
)  # fmt: skip
LATIN = (  # other Latin-script languages, accents and diacritics
    "{first} y {first} en {place}, {day} de {mes} de {year}",
    "Casa rústica con jardín en {place} – {n}{n}0.000 €",
    "¡Feliz cumpleaños, {first}! {emoji} ¿Cuántos años cumples?",
    "Coucher de soleil à {place}, {day} {mois} {year}",
    "Château médiéval près de {place} — été {year}, prix : {n},{n}0 €",
    "Crème brûlée maison, {n} € la part. Déjà goûté ?",
    "Schöne Aussicht über {place} im Frühling {year}",
    "Straßenbahn in Zürich, Größe {n}×{n} cm, Grüße an {first}!",
    "Pão de queijo e café em {place} – R$ {n}{n},90",
    "Świąteczny jarmark w {place}, {day}.{mm}.{year} – zażółć gęślą jaźń",
    "Phở bò ở Hà Nội, giá {n}{n}.000₫ — ngon tuyệt vời",
    "Phố cổ Hội An về đêm, tháng {mm} năm {year}",
    "İstanbul'da gün batımı, {day} Ağustos {year}: çok güzel!",
    "Pražský hrad v zimě, {year}. Krásný výhled na Vltavu",
    "Høstferie på Lofoten, {day}. oktober {year} – nydelig vær",
    "Sommarstuga vid sjön, {n}{n} kvm, pris {big_price_sek} kr",
)  # fmt: skip
NON_LATIN = (  # (script, phrases): a caption joins one to three of them, with a number or an emoji at times
    ("Han", ("一只猫坐在窗台上", "北京的夜景", "上海外滩", "长城上的日出", "我的朋友{first}", "这家餐厅太好吃了",
             "下雪了", "{year}年{mm}月{day}日", "价格¥{n}{n}9", "杭州西湖", "生日快乐！")),
    ("Japanese", ("東京の桜", "京都の紅葉がきれい", "ラーメンを食べました", "猫カフェに行ってきました", "富士山",
                  "{year}年{mm}月", "最高！", "お誕生日おめでとう", "コーヒー¥{n}{n}0")),
    ("Hangul", ("서울 야경", "제주도 바다", "김치찌개 맛있어요", "우리 강아지 정말 예뻐요", "{year}년 {mm}월 {day}일",
                "사랑해요", "부산 해운대 해수욕장")),
    ("Cyrillic", ("Кот спит на диване", "Вид на Москву с Воробьёвых гор", "Осенний парк в Санкт-Петербурге",
                  "Продаётся дом, {n}{n} м², {n} {d3} {d3} ₽", "С днём рождения, {ru_name}!", "Київ навесні",
                  "Зимний вечер", "{day}.{mm}.{year}")),
    ("Arabic", ("قطة تجلس على النافذة", "غروب الشمس في دبي", "مرحبا بكم في القاهرة", "السعر {n}{n} درهم",
                "عيد ميلاد سعيد", "مسجد الشيخ زايد", "٢٠٢٣")),
    ("Hebrew", ("חוף הים בתל אביב", "שבת שלום", "ירושלים בלילה", "מחיר {n}{n} ₪")),
    ("Devanagari", ("ताजमहल का सूर्यास्त", "दिल्ली की सड़कें", "मेरा प्यारा कुत्ता", "जन्मदिन मुबारक हो {first}!",
                    "कीमत ₹{n}{d3}", "होली {year}", "मुंबई में बारिश")),
    ("Greek", ("Ηλιοβασίλεμα στη Σαντορίνη", "Η Ακρόπολη της Αθήνας", "Καλημέρα από την Κρήτη", "τιμή {n}{n},50 €")),
    ("Thai", ("ทะเลสวยมาก", "วัดพระแก้ว กรุงเทพฯ", "ส้มตำอร่อย", "สุขสันต์วันเกิด")),
    ("Tamil", ("சென்னை கடற்கரை", "இனிய பிறந்தநாள் வாழ்த்துக்கள்", "மதுரை மீனாட்சி அம்மன் கோவில்")),
)  # fmt: skip
RU_NAMES = ("Саша", "Наташа", "Дмитрий", "Ольга", "Иван")
MESES = ("enero", "marzo", "mayo", "julio", "septiembre", "diciembre")
MOIS = ("janvier", "février", "avril", "juin", "août", "décembre")
KEYBOARD = dict(zip("qwertyuiopasdfghjklzxcvbnm", "wrtyuiopoasdfghjklkxcvbnmn", strict=True))  # a neighbouring key


def _date(rng: random.Random) -> str:
    """A date in one of the ways people write them."""
    year, month, day = rng.randint(1950, 2025), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice(
        (
            f"{year}-{month:02d}-{day:02d}",
            f"{month}/{day}/{year}",
            f"{day:02d}.{month:02d}.{year}",
            f"{MONTHS[month - 1]} {day}, {year}",
            f"{day} {MONTHS[month - 1][:3]} '{year % 100:02d}",
        )
    )


def _price(rng: random.Random, high: int = 500) -> str:
    """A price with a currency sign."""
    amount = rng.randint(1, high) - rng.choice((0.01, 0.05, 0.5, 0.0))
    return rng.choice(("${:,.2f}", "€{:,.0f}", "£{:,.2f}", "USD {:,.2f}", "${:,.0f}")).format(amount)


def _fields(rng: random.Random) -> dict[str, str]:
    """Fresh values for every placeholder of a template (each caption draws its own)."""
    hour, minute = rng.randint(0, 23), rng.randint(0, 59)
    return {
        "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}",
        "first": rng.choice(FIRST_NAMES),
        "ru_name": rng.choice(RU_NAMES),
        "place": rng.choice(PLACES),
        "place_in": rng.choice(PLACES_IN),
        "adj": rng.choice(ADJECTIVES),
        "Adj": rng.choice(ADJECTIVES).capitalize(),
        "animal": rng.choice(ANIMALS),
        "brand": rng.choice(BRANDS),
        "product": rng.choice(PRODUCTS),
        "color": rng.choice(COLORS),
        "Event": rng.choice(EVENTS).capitalize(),
        "race": rng.choice(("Marathon", "half marathon", "10K", "fun run", "Ironman")),
        "emoji": rng.choice(EMOJI),
        "tag": rng.choice(HASHTAGS) + rng.choice(("", "", str(rng.randint(2015, 2025)))),
        "quote": rng.choice(QUOTES),
        "date": _date(rng),
        "time": rng.choice((f"{hour:02d}:{minute:02d}", f"{hour % 12 or 12}:{minute:02d}{rng.choice(('am', 'pm'))}")),
        "month": rng.choice(MONTHS),
        "mes": rng.choice(MESES),
        "mois": rng.choice(MOIS),
        "day": str(rng.randint(1, 28)),
        "mm": f"{rng.randint(1, 12):02d}",
        "year": str(rng.randint(1950, 2025)),
        "decade": str(rng.randrange(1950, 2000, 10)),
        "nth": rng.choice(("1st", "2nd", "3rd")) if rng.random() < 0.3 else f"{rng.randint(4, 99)}th",
        "n": str(rng.randint(1, 9)),
        "q": str(rng.randint(1, 4)),
        "d3": f"{rng.randint(0, 999):03d}",
        "d4": f"{rng.randint(0, 9999):04d}",
        "d5": f"{rng.randint(0, 99999):05d}",
        "d6": f"{rng.randint(0, 999999):06d}",
        "pct": f"{rng.uniform(0.1, 80):.1f}",
        "temp": str(rng.randint(-15, 99)),
        "size": rng.choice(("S", "M", "L", "XL", "XXL", "10.5", "32x34", "EU 42", "One Size")),
        "price": _price(rng),
        "big_price": _price(rng, 2_000_000),
        "big_price_sek": f"{rng.randint(500, 9000) * 1000:,}".replace(",", " "),
        "thousands": f"{rng.randint(1, 9)},{rng.randint(0, 999):03d}",
    }


def _fill(template: str, rng: random.Random) -> str:
    """The template with every ``{field}`` drawn afresh (a field used twice gets two draws)."""
    parts = template.split("{")
    out = [parts[0]]
    for part in parts[1:]:
        field, rest = part.split("}", 1)
        out.append(_fields(rng)[field] + rest)
    return "".join(out)


def _typo(word: str, rng: random.Random) -> str:
    """A word with one slip of the keyboard: a letter dropped, doubled, swapped with the next, or a neighbour's."""
    if len(word) < 4 or not word.isascii() or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + KEYBOARD.get(word[i].lower(), word[i]) + word[i + 1 :]


def _noisy(text: str, rng: random.Random) -> str:
    """English text as people type it: typos, misspellings, elongations, mojibake, entities, case and spacing."""
    words = text.split(" ")
    for i, word in enumerate(words):
        roll = rng.random()
        if roll < 0.04:
            words[i] = _typo(word, rng)
        elif roll < 0.055:
            words[i] = rng.choice(MISSPELLINGS)
        elif roll < 0.06 and word.isalpha():
            words[i] = word + word[-1] * rng.randint(2, 5)
    if rng.random() < 0.25:
        words.insert(rng.randrange(len(words) + 1), rng.choice(MISSPELLINGS))
    if rng.random() < 0.03:
        words.insert(rng.randrange(len(words) + 1), rng.choice(MOJIBAKE))
    text = " ".join(words)
    if rng.random() < 0.03:
        text = text.replace("&", "&amp;").replace("'", "&#39;")
    roll = rng.random()
    if roll < 0.05:
        text = text.upper()
    elif roll < 0.15:
        text = text.lower()
    if rng.random() < 0.15:
        text += rng.choice(("!!!", "?!", "...", " :)", " xD", " <3", " 🙂", " (sponsored)"))
    if rng.random() < 0.03:
        text = f" {text.replace(' ', '  ', 2)}\n"
    return text


def realistic_captions(n: int, seed: int = 0) -> list[str]:
    """N web-like captions: 71% English (noisy), 12% other Latin-script languages, 17% non-Latin scripts."""
    rng = random.Random(seed)
    captions = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.71:
            text = _noisy(_fill(rng.choice(ENGLISH), rng), rng)
        elif roll < 0.83:
            text = _fill(rng.choice(LATIN), rng)
        else:
            _, phrases = rng.choice(NON_LATIN)
            pieces = [_fill(phrase, rng) for phrase in rng.sample(phrases, rng.randint(1, 3))]
            text = rng.choice((" ", "，", "、", " - ", " | ")).join(pieces)
            extra = rng.random()
            if extra < 0.25:
                text += " " + rng.choice(EMOJI)
            elif extra < 0.4:
                text = f"{rng.choice(PLACES)} {_date(rng)} {text}"
            elif extra < 0.5:
                text += f" #{rng.choice(HASHTAGS)}"
        captions.append(text)
    return captions
