"""Model cards: validated, frozen descriptions of a CLIP configuration.

A card names the image tower, the text tower, the shared embedding width, the preprocessing and the tokenizer.
Tower configurations are polymorphic: ``TowerConfig`` is the base class, each tower kind registers a subclass
with a ``kind`` literal, and validating a mapping as ``TowerConfig`` dispatches on its ``kind`` to the class the
kind registered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from clip_core.errors import CardError

__all__ = [
    "OPENAI_MEAN",
    "OPENAI_STD",
    "ModelCard",
    "PreprocessConfig",
    "PretrainedTagInfo",
    "Provenance",
    "TokenizerConfig",
    "TowerConfig",
    "card_json_schema",
    "format_validation_error",
]

#: OpenAI's pixel mean and standard deviation (RGB), used by OpenAI's and open_clip's CLIP models.
OPENAI_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

#: ln(1 / 0.07): the logit scale OpenAI's CLIP starts training from.
DEFAULT_LOGIT_SCALE = math.log(1 / 0.07)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
_ALIAS = r"^[A-Za-z0-9][A-Za-z0-9._+@/-]*$"
_KIND = r"^[a-z0-9][a-z0-9._-]*$"

CardName = Annotated[str, Field(pattern=_NAME, max_length=128)]
Alias = Annotated[str, Field(pattern=_ALIAS, max_length=128)]
KindName = Annotated[str, Field(pattern=_KIND, max_length=64)]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TowerConfig(_Strict):
    """Base class of every tower configuration.

    A plugin subclasses it with a ``kind`` field typed as a one-value ``Literal`` and registers the subclass
    with its tower kind. Validating a mapping against ``TowerConfig`` itself looks the ``kind`` up in the
    registry and validates the mapping against the registered subclass, so error paths reach into the
    subclass's fields.
    """

    kind: KindName = Field(description="Tower kind, as registered by a plugin (e.g. 'vit', 'text-transformer').")

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_kind(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if cls is not TowerConfig or not isinstance(data, Mapping) or not isinstance(data.get("kind"), str):
            return handler(data)
        from clip_core import registry

        kind = data["kind"]
        try:
            spec = registry.tower_kind(kind)
        except CardError as exc:
            raise _field_error("TowerConfig", ("kind",), kind, str(exc)) from None
        return spec.config.model_validate(data)


class PreprocessConfig(_Strict):
    """How an image becomes the pixels the image tower reads (the same steps as OpenAI's and open_clip's)."""

    image_size: Annotated[int, Field(gt=0, le=8192)] = Field(
        default=224,
        description="Side of the square input, in pixels. In a card, defaults to the image tower's `image_size`.",
    )
    mean: tuple[float, float, float] = Field(default=OPENAI_MEAN, description="Per-channel mean (RGB) subtracted.")
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = Field(
        default=OPENAI_STD, description="Per-channel standard deviation (RGB) divided by."
    )
    interpolation: Literal["bicubic", "bilinear"] = Field(default="bicubic", description="Resampling filter.")
    resize_mode: Literal["shortest", "longest", "squash"] = Field(
        default="shortest",
        description="'shortest': resize the shorter side, then center crop; 'longest': resize the longer side, "
        "then pad and center crop; 'squash': resize both sides, ignoring the aspect ratio.",
    )
    fill_color: Annotated[int, Field(ge=0, le=255)] = Field(default=0, description="Padding value for 'longest'.")


class TokenizerConfig(_Strict):
    """Which tokenizer turns text into ids, and how many ids the text tower reads."""

    kind: KindName = Field(default="clip-bpe", description="Tokenizer kind, as registered by a plugin.")
    context_length: Annotated[int, Field(gt=1, le=65536)] = Field(
        default=77, description="Ids per text, start and end tokens included. In a card, defaults to the text tower's."
    )


class PretrainedTagInfo(_Strict):
    """What is published about one set of pretrained weights for a card."""

    tag: Annotated[str, Field(pattern=_KIND)] = Field(description="Pretrained tag, e.g. 'openai'.")
    dataset: str | None = Field(default=None, description="Training data set, e.g. 'LAION-2B'.")
    zero_shot: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="Published zero-shot top-1 accuracy by benchmark, e.g. {'imagenet1k': 0.632}."
    )


class Provenance(_Strict):
    """Where a configuration comes from."""

    paper: str | None = Field(default=None, description="Paper that introduced the configuration.")
    url: str | None = Field(default=None, description="Where the configuration is published.")
    notes: str | None = Field(default=None, description="Anything a user should know, e.g. the activation it needs.")
    pretrained: tuple[PretrainedTagInfo, ...] = Field(default=(), description="Published weights for this card.")


class ModelCard(_Strict):
    """A CLIP configuration: two towers, a shared embedding width, preprocessing, tokenizer and temperature.

    Load cards with :func:`clip_core.get_card`, which accepts a registered name or alias, a dict, or a JSON /
    YAML / TOML file, and turns validation errors into :class:`clip_core.CardError` naming the field path.
    """

    name: CardName = Field(description="Unique name, e.g. 'ViT-B-32'.")
    embed_dim: Annotated[int, Field(gt=0, le=65536)] = Field(description="Width of the shared embedding space.")
    image: SerializeAsAny[TowerConfig] = Field(description="Image tower configuration (its `kind` selects it).")
    text: SerializeAsAny[TowerConfig] = Field(description="Text tower configuration (its `kind` selects it).")
    preprocess: PreprocessConfig = Field(
        default_factory=PreprocessConfig, description="Image preprocessing; `image_size` defaults to the tower's."
    )
    tokenizer: TokenizerConfig = Field(
        default_factory=TokenizerConfig, description="Tokenizer; `context_length` defaults to the text tower's."
    )
    init_logit_scale: float = Field(
        default=DEFAULT_LOGIT_SCALE, description="Initial log of the logit scale (temperature), ln(1/0.07) by default."
    )
    init_logit_bias: float | None = Field(
        default=None, description="Initial logit bias (SigLIP-style models, e.g. -10); None for no bias."
    )
    aliases: tuple[Alias, ...] = Field(default=(), description="Other names for this card, e.g. OpenAI's 'ViT-B/32'.")
    provenance: Provenance = Field(default_factory=Provenance, description="Paper, source and published weights.")

    @field_validator("image", "text")
    @classmethod
    def _kind_matches_modality(cls, value: TowerConfig, info: Any) -> TowerConfig:
        from clip_core import registry

        expected = info.field_name
        actual = registry.tower_kind(value.kind).modality
        if actual != expected:
            raise ValueError(f"tower kind {value.kind!r} is a {actual} tower; `{expected}` needs an {expected} tower")
        return value

    @model_validator(mode="after")
    def _sections_follow_towers(self) -> ModelCard:
        """`preprocess.image_size` and `tokenizer.context_length` default to the towers' and must agree with them."""
        for section, key, tower in (("preprocess", "image_size", "image"), ("tokenizer", "context_length", "text")):
            config = getattr(self, section)
            expected, given = getattr(getattr(self, tower), key, None), getattr(config, key)
            if expected is None or given == expected:
                continue
            if key in config.model_fields_set:
                message = f"{given} disagrees with {tower}.{key} ({expected}); leave it out to use the tower's"
                raise _field_error("ModelCard", (section, key), given, message)
            object.__setattr__(self, section, config.model_copy(update={key: expected}))  # frozen: set once, here
        return self

    def with_activation(self, activation: Literal["gelu", "quick_gelu"], name: str | None = None) -> ModelCard:
        """This card with ``activation`` in every tower whose config has an ``activation`` field.

        Returns the card itself when those towers already use it. Otherwise the new card is named ``name`` or,
        by default, after the change (``ViT-B-16`` with quick_gelu is ``ViT-B-16-quickgelu``, open_clip's name for
        it; ``X-quickgelu`` with gelu is ``X``, anything else ``X-gelu``), has no aliases (they name this card)
        and says in ``provenance.notes`` where it comes from. :class:`CardError` if neither tower has an
        ``activation`` field, or a tower's field does not accept the value.
        """
        towers: dict[str, TowerConfig] = {}
        for field in ("image", "text"):
            config: TowerConfig = getattr(self, field)
            if "activation" not in type(config).model_fields or getattr(config, "activation", None) == activation:
                continue
            try:
                towers[field] = type(config).model_validate(config.model_dump() | {"activation": activation})
            except ValidationError as exc:
                raise CardError(
                    f"card {self.name!r}: the {field} tower (kind {config.kind!r}) does not accept activation "
                    f"{activation!r}: {format_validation_error(exc)}"
                ) from None
        if not towers:
            if not any("activation" in type(getattr(self, field)).model_fields for field in ("image", "text")):
                raise CardError(f"card {self.name!r}: neither tower has an `activation` to set to {activation!r}")
            return self
        if name is None:
            suffix = "-quickgelu"
            if activation == "quick_gelu":
                name = self.name + suffix
            else:
                name = self.name.removesuffix(suffix) if self.name.endswith(suffix) else f"{self.name}-gelu"
        if not re.fullmatch(_NAME, name) or len(name) > 128:
            raise CardError(f"invalid card name {name!r}: letters, digits, '.', '_', '+' and '-', at most 128")
        notes = f"Card {self.name!r} with {activation} activations in every tower that has an `activation`."
        provenance = self.provenance.model_copy(update={"notes": notes})
        return self.model_copy(update={**towers, "name": name, "aliases": (), "provenance": provenance})

    def with_image_size(self, size: int, name: str | None = None) -> ModelCard:
        """This card reading ``size``-pixel images: the image tower's ``image_size`` and the preprocessing's.

        Weights of the original size load into the new card: the towers resample their position embeddings to
        the new grid on load (bicubic, class token kept, as open_clip's ``force_image_size``). Returns the card
        itself when it already reads ``size``. The new card is named ``name`` or, by default, after the change
        (``ViT-B-32`` at 288 is ``ViT-B-32-288``; a trailing ``-<old size>`` is replaced), has no aliases and says
        in ``provenance.notes`` where it comes from. :class:`CardError` if the image tower has no ``image_size``
        or does not accept ``size`` (e.g. not a multiple of the patch size).
        """
        config: TowerConfig = self.image
        if "image_size" not in type(config).model_fields:
            raise CardError(f"card {self.name!r}: the image tower (kind {config.kind!r}) has no `image_size` to set")
        old = getattr(config, "image_size", None)
        if old == size:
            return self
        try:
            image = type(config).model_validate(config.model_dump() | {"image_size": size})
            preprocess = PreprocessConfig.model_validate(self.preprocess.model_dump() | {"image_size": size})
        except ValidationError as exc:
            raise CardError(
                f"card {self.name!r}: the image tower (kind {config.kind!r}) cannot read {size}-pixel images: "
                f"{format_validation_error(exc)}"
            ) from None
        if name is None:
            name = f"{self.name.removesuffix(f'-{old}')}-{size}"
        if not re.fullmatch(_NAME, name) or len(name) > 128:
            raise CardError(f"invalid card name {name!r}: letters, digits, '.', '_', '+' and '-', at most 128")
        notes = f"Card {self.name!r} reading {size}x{size} images (its weights' position embeddings resampled)."
        provenance = self.provenance.model_copy(update={"notes": notes, "pretrained": ()})
        update = {"image": image, "preprocess": preprocess, "name": name, "aliases": (), "provenance": provenance}
        return self.model_copy(update=update)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_card_from_json, (self.model_dump_json(),))


def _field_error(title: str, loc: tuple[str, ...], value: Any, message: str) -> ValidationError:
    """A validation error at ``loc``; raised inside a validator, pydantic keeps its location."""
    error = PydanticCustomError("clip_card", message.replace("{", "{{").replace("}", "}}"))
    return ValidationError.from_exception_data(title, [InitErrorDetails(type=error, loc=loc, input=value)])


def _card_from_json(text: str) -> ModelCard:
    return ModelCard.model_validate_json(text)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each starting with the dotted field path (``image.width: ...``)."""
    parts = []
    for err in exc.errors(include_url=False):
        path = ""
        for item in err["loc"]:
            path += f"[{item}]" if isinstance(item, int) else (f".{item}" if path else str(item))
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{path or '<card>'}: {message}")
    return "; ".join(parts)


def card_json_schema() -> dict[str, Any]:
    """The JSON Schema of a card file, with every installed tower kind as a choice for `image` and `text`."""
    from pydantic import create_model

    from clip_core import registry

    fields: dict[str, Any] = {}
    for modality in ("image", "text"):
        configs = [spec.config for spec in registry.tower_kinds(modality).values()]
        if configs:
            choice: Any = configs[0]
            if len(configs) > 1:
                choice = Annotated[Union[tuple(configs)], Field(discriminator="kind")]  # noqa: UP007
            fields[modality] = (choice, Field(description=ModelCard.model_fields[modality].description))
    schema_model = create_model("ModelCard", __base__=ModelCard, **fields)
    return schema_model.model_json_schema()
