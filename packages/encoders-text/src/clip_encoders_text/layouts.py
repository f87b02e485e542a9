"""The `clip-bpe` tokenizer in other libraries' layouts (its exporters): transformers' tokenizer files, and open_clip's
own tokenizer, which is this one (so an open_clip folder needs no files for it).

transformers' ``CLIPTokenizer`` reads ``tokenizer.json`` (a Hugging Face ``tokenizers`` pipeline) or ``vocab.json``
with ``merges.txt``; both are written from the package's merges, with OpenAI's names for the start and end tokens
(``<|startoftext|>``, ``<|endoftext|>``) at the same ids. Its pipeline normalises text (NFC, whitespace runs to one
space, lower case) without ftfy or HTML unescaping, so texts holding mojibake or HTML entities may get other ids than
here; plain text gets the same ids. It pads with the end token, where this tokenizer pads with 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from clip_core import TokenizerConfig
from clip_core.durable import write_atomically
from clip_encoders_text.vocab import END_ID, END_OF_WORD, END_TEXT, START_ID, START_TEXT, read_merges, vocabulary

__all__ = ["HF_TOKENIZER_FILES", "export_hf_tokenizer", "export_open_clip_tokenizer"]

#: The files :func:`export_hf_tokenizer` writes.
HF_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)

# transformers' CLIP word pattern: the special tokens, contractions, letter runs, single digits, other runs.
_HF_WORDS = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _hf_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            continuing_subword_prefix="",
            end_of_word_suffix=END_OF_WORD,
            fuse_unk=False,
            unk_token=END_TEXT,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_HF_WORDS), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(
        (END_TEXT, END_ID), (START_TEXT, START_ID), trim_offsets=False, add_prefix_space=False
    )
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=True) for token in (START_TEXT, END_TEXT)])
    return tokenizer


def _write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def export_hf_tokenizer(config: TokenizerConfig, directory: Path) -> dict[str, Any]:
    """Write transformers' tokenizer files (:data:`HF_TOKENIZER_FILES`) into ``directory`` for texts of
    ``config.context_length`` ids; returns the token ids transformers' ``CLIPTextConfig`` records."""
    merges = read_merges()
    names = [*vocabulary(merges)[:START_ID], START_TEXT, END_TEXT]
    vocab = {token: i for i, token in enumerate(names)}
    _write_text(directory / "tokenizer.json", _hf_tokenizer(vocab, merges).to_str(pretty=False))
    _write_text(directory / "vocab.json", json.dumps(vocab, ensure_ascii=False) + "\n")
    _write_text(directory / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    specials = {"bos_token": START_TEXT, "eos_token": END_TEXT, "unk_token": END_TEXT, "pad_token": END_TEXT}
    tokenizer_config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": config.context_length,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        **specials,
    }
    _write_text(directory / "tokenizer_config.json", json.dumps(tokenizer_config, indent=2) + "\n")
    _write_text(directory / "special_tokens_map.json", json.dumps(specials, indent=2) + "\n")
    return {"bos_token_id": START_ID, "eos_token_id": END_ID, "pad_token_id": END_ID}


def export_open_clip_tokenizer(config: TokenizerConfig, directory: Path) -> dict[str, Any]:
    """open_clip's default tokenizer is this one: nothing to write, nothing to add to its ``text_cfg``."""
    return {}
