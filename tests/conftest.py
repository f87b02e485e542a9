"""Shared fixtures. The cards `tiny`, `tiny-wide` and `tiny-long` come from the installed test plugin."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

# A broken installed plugin is an error here, not a warning: the tests must never run with a plugin left out.
os.environ.setdefault("CLIP_STRICT_PLUGINS", "1")

if os.environ.get("CLIP_REQUIRE_PEERS"):  # set by `nox -s tests`: peer-parity tests must run, never skip
    for peer in (
        "open_clip",
        "transformers",
        "fastapi",
        "uvicorn",
        "python_multipart",
        "httpx",
        "faiss",
        "onnxruntime",
        "clip_benchmark.datasets.builder",
    ):
        importlib.import_module(peer)

    def _import_or_fail(modname: str, minversion: str | None = None, reason: str | None = None, **_: Any) -> Any:
        """``pytest.importorskip`` that fails instead of skipping: every import it guards (submodules too) must work."""
        return importlib.import_module(modname)

    pytest.importorskip = _import_or_fail  # type: ignore[assignment]


@pytest.fixture
def scratch_path(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, removed when the test ends, passed or failed: for the exported weights of the large cards, which
    would fill the disk if a failed test kept them (ViT-g-14's folders are 5.5 GB each)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def tiny_dict() -> dict[str, Any]:
    """A valid card as a plain dict, composed from the test plugin's tower kinds."""
    return {
        "name": "tiny-dict",
        "embed_dim": 12,
        "image": {"kind": "patch-mean", "image_size": 16, "patch_size": 4, "width": 8},
        "text": {"kind": "bag-of-words", "context_length": 10, "width": 8},
        "tokenizer": {"kind": "bytes"},
    }


@dataclass
class LiveServer:
    """A `clip serve` process on loopback, started by the `clip_serve` fixture."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def clip_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Start `clip serve ARGS` (python -m clip_core) on a free loopback port; wait until /health answers.

    The processes still running at the end of the session are stopped with SIGTERM.
    """
    started: list[LiveServer] = []

    def start(*args: str, timeout: float = 600.0) -> LiveServer:
        port = _free_port()
        log = tmp_path_factory.mktemp("serve-log") / "server.log"
        command = [sys.executable, "-m", "clip_core", "serve", *args, "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        server = LiveServer(f"http://127.0.0.1:{port}", process, log)
        started.append(server)
        deadline = time.monotonic() + timeout  # generous: importing torch on a loaded machine is slow
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"clip serve exited with {process.returncode}:\n{server.output()}")
            try:
                with urllib.request.urlopen(f"{server.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return server
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"clip serve did not answer /health within {timeout:.0f} s:\n{server.output()}")

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


#: Pictures the served library holds: (shape, colour); the last file's name tries to inject HTML.
PICTURES = {
    "red-circle.png": ("circle", (220, 30, 30)),
    "blue-square.png": ("square", (30, 60, 220)),
    "green-triangle.png": ("triangle", (30, 180, 60)),
    "yellow-circle.png": ("circle", (235, 210, 40)),
    "purple-square.png": ("square", (140, 40, 170)),
    "orange-triangle.png": ("triangle", (240, 130, 20)),
    'x"><img src=x onerror=alert(1)>.png': ("circle", (20, 20, 20)),
}


def draw_picture(shape: str, colour: tuple[int, int, int], size: int = 64) -> Image.Image:
    """A shape of one colour on white."""
    image = Image.new("RGB", (size, size), (250, 250, 250))
    pen = ImageDraw.Draw(image)
    box = (size // 6, size // 6, size - size // 6, size - size // 6)
    if shape == "circle":
        pen.ellipse(box, fill=colour)
    elif shape == "square":
        pen.rectangle(box, fill=colour)
    else:
        pen.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)
    return image


@dataclass
class ServedLibrary:
    """A saved `tiny` model (random weights), a folder of pictures, their `clip embed` file, and `clip serve` on it."""

    model_dir: Path
    pictures: Path
    embeddings: Path
    server: LiveServer


@pytest.fixture(scope="session")
def served_library(tmp_path_factory: pytest.TempPathFactory, clip_serve: Callable[..., LiveServer]) -> ServedLibrary:
    """`clip serve --model MODEL --embeddings E --max-request-mb 1` over pictures embedded by `clip embed`."""
    import torch

    import clip_core
    from clip_core.cli import main

    root = tmp_path_factory.mktemp("served")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model_dir = clip_core.create_model("tiny").save_pretrained(root / "model")
    pictures = root / "pictures"
    pictures.mkdir()
    for name, (shape, colour) in PICTURES.items():
        draw_picture(shape, colour).save(pictures / name)
    embeddings = root / "pictures.npy"
    command = ["embed", str(pictures), "--model", str(model_dir), "-o", str(embeddings), "--workers", "0"]
    assert main([*command, "--no-progress"]) == 0
    server = clip_serve("--model", str(model_dir), "--embeddings", str(embeddings), "--max-request-mb", "1")
    return ServedLibrary(model_dir, pictures, embeddings, server)
