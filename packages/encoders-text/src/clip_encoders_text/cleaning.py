"""open_clip's text cleaning, computed without ftfy wherever its result is certain.

open_clip cleans a text before splitting it into words: ``ftfy.fix_text``, ``html.unescape`` twice, whitespace runs
folded to one space, lower case (:func:`clean_text`). ftfy is slow (about 50 µs for a caption), and for most texts
it changes nothing. :func:`clean_unfolded` (one text, whitespace not folded) and :func:`clean_texts` (a batch, only
runs of spaces left) give the same result in two tiers:

1. **ASCII without ``&`` whose only non-printable characters are ``\t \n \r \f``** is, whitespace folding aside,
   a fixed point of ftfy and ``html.unescape``, so only lower-casing applies. ``html.unescape`` changes only text
   holding ``&``. ftfy's passes: HTML decoding needs ``&``; its mojibake repair returns ASCII text unchanged
   (``_fix_encoding_one_step_and_explain`` says so first thing); C1 controls, ligatures, full-width characters,
   curly quotes and surrogates are non-ASCII; terminal escapes start with ESC and the control characters it removes
   are ESC, DEL and the other C0 controls but ``\t \n \f \r``; line-break fixing turns ``\r\n`` and ``\r`` into
   ``\n``, whitespace into whitespace; NFC leaves ASCII as it is.
2. **Any other text**: ftfy's passes are followed in Python as long as they only decode HTML and straighten curly
   quotes and ftfy's own mojibake test finds nothing (:class:`_FtfyShortcut`); otherwise ftfy runs.

Everything the second tier relies on is read from the installed ftfy (its fixers' tables and patterns, its
configuration's fields); if ftfy has changed shape, ftfy runs for every text of the second tier.
"""

from __future__ import annotations

import html
import importlib
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ftfy
import ftfy.badness
import ftfy.chardata as chardata
import ftfy.fixes

__all__ = ["clean_text", "clean_texts", "clean_unfolded"]

_LINE_SPACE = str.maketrans("", "", "\t\n\r\f")  # deletes the non-printable ASCII that ftfy keeps as whitespace


def clean_text(text: str) -> str:
    """open_clip's cleaning: ftfy, HTML entities unescaped twice, whitespace runs folded to one space, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


def clean_unfolded(text: str) -> str:
    """``clean_text(text)`` with whitespace runs not folded yet: ``" ".join(clean_unfolded(t).split())`` is it.

    Folding is left to the caller's ``str.split``: lower-casing neither makes nor removes whitespace, nor does its
    final-sigma rule look across whitespace, so it commutes with folding.
    """
    if text.isascii() and "&" not in text and (text.isprintable() or text.translate(_LINE_SPACE).isprintable()):
        return text.lower()  # tier 1 (module docstring)
    text = _FTFY.fix_text(text) if _FTFY is not None else ftfy.fix_text(text)
    if "&" in text:
        text = html.unescape(html.unescape(text))
    return text.lower()


def clean_texts(texts: Iterable[str]) -> list[str]:
    """Each text's ``clean_text(text)``, except that runs of spaces may remain: the only whitespace is the space, so
    ``cleaned.split(" ")`` without its empty strings is ``clean_text(text).split()``."""
    return [
        text.lower()  # the commonest case of tier 1 (module docstring), inlined
        if text.isascii() and "&" not in text and text.isprintable()
        else " ".join(clean_unfolded(text).split())
        for text in texts
    ]


# --- Running ftfy only where it changes something -------------------------------------------------------------------
#
# ftfy 6 repairs a text line by line, repeating one pass until the pass changes nothing. The pass: decode HTML
# entities (`&name;`, `&#123;`; not at all in a line holding `<`), repair mojibake (only where
# `ftfy.badness.is_bad` finds some), then C1 controls, Latin ligatures, character width, curly quotes, line breaks,
# surrogates, terminal escapes, control characters, and NFC. On one line holding none of the characters that the
# C1, ligature, width, line-break, surrogate, escape and control-character fixers change, and no mojibake, a pass
# reduces to HTML decoding, quote straightening and NFC, which `_FtfyShortcut` follows (and checks, NFC included).
# Those characters come from ftfy's own tables and patterns, and the mojibake test is ftfy's own regex, searched
# only near the characters every match needs (`_Badness`, proven from the regex's parse tree). If ftfy's
# configuration has fields other than those known here (a new fixer), ftfy always runs.

_FTFY_FIELDS = frozenset(
    {
        "unescape_html",
        "remove_terminal_escapes",
        "fix_encoding",
        "restore_byte_a0",
        "replace_lossy_sequences",
        "decode_inconsistent_utf8",
        "fix_c1_controls",
        "fix_latin_ligatures",
        "fix_character_width",
        "uncurl_quotes",
        "fix_line_breaks",
        "fix_surrogates",
        "remove_control_chars",
        "normalization",
        "max_decode_length",
        "explain",
    }
)
_SHORTCUT_MAX_LENGTH = 100_000  # ftfy cuts longer lines into 1,000,000-character pieces; stay well inside one
_SHORTCUT_MAX_PASSES = 4  # then leave it to ftfy


def _parse_regex(pattern: re.Pattern[str]) -> Any:
    """The parse tree of a pattern from Python's own regex parser (`re._parser`; `sre_parse` on Python 3.10)."""
    name = "re._parser" if sys.version_info >= (3, 11) else "sre_parse"
    return importlib.import_module(name).parse(pattern.pattern, pattern.flags)


def _item_chars(item: tuple[Any, Any]) -> set[str] | None:
    """The characters a one-character regex item matches: a literal or a class of literals and ranges, else None."""
    op, arg = item
    if str(op) == "LITERAL":
        return {chr(arg)}
    if str(op) != "IN":
        return None
    chars: set[str] = set()
    for sub_op, sub_arg in arg:
        if str(sub_op) == "LITERAL":
            chars.add(chr(sub_arg))
        elif str(sub_op) == "RANGE":
            chars.update(map(chr, range(sub_arg[0], sub_arg[1] + 1)))
        else:
            return None
    return chars


_CONTEXT_FREE_OPS = frozenset({"LITERAL", "NOT_LITERAL", "IN", "ANY", "MAX_REPEAT", "MIN_REPEAT", "SUBPATTERN"})


def _context_free(items: Any) -> bool:
    """Whether matches of these regex items depend on nothing outside them (``^`` too: `search(pos=...)` keeps it)."""
    for op, arg in items:
        name = str(op)
        if name == "AT" and str(arg) in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
            continue
        if name not in _CONTEXT_FREE_OPS:
            return False
        if name in ("MAX_REPEAT", "MIN_REPEAT") and not _context_free(arg[2]):
            return False
        if name == "SUBPATTERN" and not _context_free(arg[-1]):
            return False
    return True


@dataclass(frozen=True)
class _Badness:
    """Every match of ftfy's mojibake pattern is at most ``width`` long and holds a character ``anchors`` finds."""

    anchors: re.Pattern[str]
    width: int

    @classmethod
    def of_ftfy(cls) -> _Badness | None:
        """Proves the property for ``ftfy.badness.BADNESS_RE`` from its parse tree, or returns None."""
        pattern = ftfy.badness.BADNESS_RE
        if pattern.flags & re.IGNORECASE:
            return None
        tree = _parse_regex(pattern)
        items = list(tree.data)
        branches = items[0][1][1] if len(items) == 1 and str(items[0][0]) == "BRANCH" else [tree]
        anchors: set[str] = set()
        width = 0
        for branch in branches:
            longest = branch.getwidth()[1]
            # candidate anchors: the branch's top-level one-character items that only non-ASCII characters match
            sets = [chars for chars in map(_item_chars, branch.data) if chars and min(map(ord, chars)) >= 0x80]
            if longest > 64 or not sets or not _context_free(branch.data):
                return None
            anchors |= min(sets, key=len)
            width = max(width, longest)
        return cls(re.compile("[" + "".join(re.escape(c) for c in sorted(anchors)) + "]"), width)

    def is_bad(self, text: str) -> bool:
        """``ftfy.badness.is_bad(text)``, searching only the windows around the anchor characters."""
        search = ftfy.badness.BADNESS_RE.search
        reach = self.width - 1
        low = high = 0  # the current window is text[low:high]; high == 0 before the first
        for found in self.anchors.finditer(text):
            at = found.start()
            if high and at - reach <= high:
                high = at + reach + 1
                continue
            if high and search(text, low, high):
                return True
            low, high = max(0, at - reach), at + reach + 1
        return bool(high) and search(text, low, high) is not None


# Characters ftfy's code (not a table) changes: line breaks (it also works line by line), terminal escapes (they
# start with ESC), surrogates. C1 controls come from its pattern.
_FIXED_BY_CODE = "\n\r\x85\u2028\u2029\x1b" + "".join(map(chr, range(0xD800, 0xE000)))


@dataclass(frozen=True)
class _FtfyShortcut:
    """What ftfy's passes change, read from ftfy itself; ``fix_text`` follows the passes where that is enough."""

    fixed_chars: re.Pattern[str]  # characters a fixer other than HTML, mojibake and quotes changes, or a line break
    quotes: re.Pattern[str]  # the curly quotes ftfy straightens
    entity: re.Pattern[str]  # what ftfy's HTML decoder looks at
    badness: _Badness | None

    @classmethod
    def of_ftfy(cls) -> _FtfyShortcut | None:
        """The shortcut for the installed ftfy, or None when its fixers are not the known ones."""
        try:
            if set(ftfy.TextFixerConfig._fields) != _FTFY_FIELDS:
                return None
            tables = (chardata.LIGATURES, chardata.WIDTH_MAP, chardata.CONTROL_CHARS)
            fixed = {chr(code) for table in tables for code in table} | set(_FIXED_BY_CODE)
            quotes: set[str] = set()
            for pattern in (chardata.SINGLE_QUOTE_RE, chardata.DOUBLE_QUOTE_RE, chardata.C1_CONTROL_RE):
                items = list(_parse_regex(pattern).data)
                found = _item_chars(items[0]) if len(items) == 1 else None
                if found is None:
                    return None
                if pattern is chardata.C1_CONTROL_RE:
                    fixed |= found
                else:
                    quotes |= found
            return cls(_char_class(fixed), _char_class(quotes), chardata.HTML_ENTITY_RE, _Badness.of_ftfy())
        except (AttributeError, IndexError, TypeError, ValueError):  # pragma: no cover - another ftfy
            return None

    def is_bad(self, text: str) -> bool:
        """``ftfy.badness.is_bad(text)``."""
        return self.badness.is_bad(text) if self.badness is not None else bool(ftfy.badness.is_bad(text))

    def fix_text(self, text: str) -> str:
        """``ftfy.fix_text(text)``, without running ftfy when the passes' result is certain."""
        result = self._passes(text) if len(text) <= _SHORTCUT_MAX_LENGTH else None
        return ftfy.fix_text(text) if result is None else result

    def _passes(self, text: str) -> str | None:
        """ftfy's passes over a one-line text, when only HTML decoding and quote straightening change it; else None.

        Each pass below equals ftfy's: decode HTML (not in a line holding ``<``; decoding never removes a line
        break), find no mojibake, no character the other fixers change, straighten quotes, find the text in NFC.
        """
        decodes = "<" not in text
        current = text
        for _ in range(_SHORTCUT_MAX_PASSES):
            result = (
                ftfy.fixes.unescape_html(current)
                if decodes and "&" in current and self.entity.search(current)
                else current
            )
            if self.fixed_chars.search(result) or self.is_bad(result):
                return None
            if self.quotes.search(result):
                result = ftfy.fixes.uncurl_quotes(result)
            if not unicodedata.is_normalized("NFC", result):
                return None
            if result == current:
                return result
            current = result
        return None


def _char_class(chars: set[str]) -> re.Pattern[str]:
    """A pattern matching any one of ``chars``."""
    return re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "]")


_FTFY = _FtfyShortcut.of_ftfy()
