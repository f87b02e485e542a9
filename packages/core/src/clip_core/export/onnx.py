"""ONNX export: the two towers as ONNX graphs that ONNX Runtime runs without torch or clip-sdk.

:func:`write_onnx` writes

- ``image.onnx``: input ``pixels``, float32 ``[batch, 3, S, S]`` (the card's preprocessing), output
  ``image_embeds`` ``[batch, embed_dim]``;
- ``text.onnx``: input ``ids``, int64 ``[batch, L]`` with ``L`` up to the card's context length (the card's
  tokenizer, zero padded), output ``text_embeds`` ``[batch, embed_dim]``.

Both outputs are unit length, as ``encode_image`` / ``encode_text`` with ``normalize=True``; batch and length are
dynamic. The graphs are traced by torch's TorchScript-based exporter (``dynamo=False``), which needs neither
onnxscript nor ``torch.export``'s symbolic shapes and exports a ViT-B/32 in seconds (the ``torch.export`` path took
about eight times longer here, for the same graph). While a graph is traced, towers take their module-by-module
path rather than the in-place blocks (:func:`clip_core.inplace.tracing`), and the text tower keeps every position;
it finds the end token by an argmax over int32 ids, so the text graph holds no int64 ArgMax, which some ONNX
Runtime builds do not implement.

A graph whose weights pass ONNX's 2 GB protobuf limit keeps them in one file beside it (``image.onnx.data``), as
ONNX's external data; ONNX Runtime reads it from there.
"""

from __future__ import annotations

import copy
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch
from torch import nn

from clip_core.errors import ExportError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["IMAGE_FILE", "ONNX_EXTRA", "OPSET", "TEXT_FILE", "write_onnx"]

#: File names of the two graphs in an ONNX export folder.
IMAGE_FILE, TEXT_FILE = "image.onnx", "text.onnx"
#: The ONNX opset the graphs are written in (ONNX Runtime >= 1.12 runs it; LayerNormalization is one operator).
OPSET = 17
#: How to install what the export needs.
ONNX_EXTRA = "pip install 'clip-core[onnx]'"
#: External tensors start at multiples of this many bytes in the ``.data`` file (ONNX Runtime can map them).
_ALIGNMENT = 4096
_BLOCK = 1 << 24


def _require_onnx() -> Any:
    """The ``onnx`` package, or a :class:`ExportError` naming the extra that installs it."""
    try:
        import onnx
    except ImportError as exc:
        raise ExportError(f"exporting to ONNX needs the onnx package: {ONNX_EXTRA} ({exc})") from None
    return onnx


class _ImageGraph(nn.Module):
    """What ``image.onnx`` computes: unit-length image embeddings."""

    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


class _TextGraph(nn.Module):
    """What ``text.onnx`` computes: unit-length text embeddings."""

    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(ids, normalize=True)


def write_onnx(model: ClipModel, directory: Path) -> list[Path]:
    """Write ``image.onnx`` and ``text.onnx`` (see the module's docstring) into the existing ``directory``;
    returns the paths written (with ``*.onnx.data`` files for graphs over 2 GB).

    The graphs compute in float32 on the CPU: a model in another dtype or on another device is exported from a
    float32 CPU copy. ``model`` is left as it was (its training mode included). :class:`ExportError` naming the
    ``clip-core[onnx]`` extra when ``onnx`` is not installed.
    """
    onnx = _require_onnx()
    parameter = next(model.parameters(), None)
    if parameter is not None and (parameter.dtype != torch.float32 or parameter.device.type != "cpu"):
        model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    card = model.card
    size = card.preprocess.image_size
    context = card.tokenizer.context_length
    pixels = torch.zeros(2, 3, size, size)
    ids = torch.zeros(2, context, dtype=torch.long)
    ids[:, 0], ids[:, -1] = 1, 2  # a start and an end for towers that read them; the graph does not depend on it
    was_training = model.training
    model.eval()
    try:
        written = _export(onnx, _ImageGraph(model), pixels, "pixels", "image_embeds", directory / IMAGE_FILE)
        written += _export(onnx, _TextGraph(model), ids, "ids", "text_embeds", directory / TEXT_FILE)
    finally:
        model.train(was_training)
    return written


def _export(onnx: Any, graph: nn.Module, sample: torch.Tensor, name: str, output: str, path: Path) -> list[Path]:
    """Trace ``graph`` on ``sample`` into ``path`` (every axis of the input but the channels and the image sides
    dynamic), then check it with ``onnx.checker``."""
    graph.eval()
    axes = {0: "batch", 1: "length"} if sample.dim() == 2 else {0: "batch"}
    staging = path.parent / f".{path.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the tracer warns about every Python-side shape check it freezes, and the exporter that it is the
            # TorchScript-based one: expected here, and noise to a user exporting a model
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (sample,),
                str(staging / path.name),
                input_names=[name],
                output_names=[output],
                dynamic_axes={name: axes, output: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        written = _pack(onnx, staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    onnx.checker.check_model(str(path))
    return written


def _pack(onnx: Any, staging: Path, path: Path) -> list[Path]:
    """Move the graph ``staging / path.name`` to ``path``; weights the exporter wrote as external data (one file per
    tensor, for graphs over 2 GB) go into one file, ``path`` + ``.data``, beside it: copied one tensor at a time, so
    that packing ViT-g-14's 4 GB image graph never holds its weights in memory."""
    exported = staging / path.name
    if [entry.name for entry in staging.iterdir()] == [path.name]:
        exported.replace(path)
        return [path]
    helper = onnx.external_data_helper
    data = path.with_name(path.name + ".data")
    proto = onnx.load(str(exported), load_external_data=False)
    with data.open("wb") as out:
        for tensor in _tensors(proto.graph):
            if not helper.uses_external_data(tensor):
                continue
            info = helper.ExternalDataInfo(tensor)
            offset = -out.tell() % _ALIGNMENT + out.tell()  # ONNX Runtime may memory-map aligned tensors
            out.write(bytes(offset - out.tell()))
            with (staging / info.location).open("rb") as source:
                source.seek(info.offset or 0)
                length = _copy(source, out, info.length)
            del tensor.external_data[:]  # the tensor stays external (its data location), now in the one file
            for key, value in (("location", data.name), ("offset", str(offset)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
        out.flush()
        os.fsync(out.fileno())
    onnx.save_model(proto, str(path))
    return [path, data]


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph holds: its initializers and its nodes' tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                yield from _tensors(subgraph)


def _copy(source: BinaryIO, out: BinaryIO, length: int | None) -> int:
    """Copy ``length`` bytes (the rest when ``None``) from ``source`` to ``out`` in blocks; returns the count."""
    copied = 0
    while length is None or copied < length:
        block = source.read(_BLOCK if length is None else min(_BLOCK, length - copied))
        if not block:
            break
        out.write(block)
        copied += len(block)
    return copied
