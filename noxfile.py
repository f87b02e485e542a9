"""Checks for the clip-sdk monorepo. `nox` runs lint, typecheck, tests (every Python) and isolation.

Sessions are named for what they check. uv creates the environments and hard-links packages from its cache, so
the Python matrix stays fast and small on disk.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = {  # folder -> (distribution, import name)
    "core": ("clip-core", "clip_core"),
    "encoders-text": ("clip-encoders-text", "clip_encoders_text"),
    "encoders-vit": ("clip-encoders-vit", "clip_encoders_vit"),
    "encoders-resnet": ("clip-encoders-resnet", "clip_encoders_resnet"),
    "losses": ("clip-losses", "clip_losses"),
}
TEST_PLUGIN = "tests/plugins/clip-test-towers"
TEST_PEERS = ["open_clip_torch==3.3.*", "transformers==5.*"]
#: clip-core with the extras its tests exercise (FAISS indices, ONNX export; `clip serve`, over HTTP with httpx).
CORE_UNDER_TEST = ["packages/core[testing,faiss,onnx,serve,tensorboard]", "httpx"]
#: CLIP_benchmark, the reference `clip eval` is tested against (its wds reader needs requests and webdataset;
#: its metrics scikit-learn).
EVAL_PEERS = ["clip-benchmark==1.6.2", "requests", "webdataset", "scikit-learn"]
#: A card each tower package must build and run end to end when installed alone (with clip-core).
SMOKE_CARDS = {"encoders-vit": "ViT-B-32", "encoders-resnet": "RN50"}
SMOKE = """
import sys, torch, clip_core
model = clip_core.create_model(sys.argv[1]).eval()
size = model.card.preprocess.image_size
with torch.no_grad():
    out = model(torch.rand(2, 3, size, size), clip_core.get_tokenizer(model.card)(["a photo of a cat", "a dog"]))
print(sys.argv[1], "logits", tuple(out.logits_per_image.shape))
"""


def _declared_pythons(folder: str) -> list[str]:
    """The Python versions a package declares in its classifiers."""
    text = (ROOT / "packages" / folder / "pyproject.toml").read_text()
    return re.findall(r"Programming Language :: Python :: (3\.\d+)\"", text)


PYTHONS = _declared_pythons("core")


def _expose_pyenv_interpreters(versions: list[str]) -> None:
    """Put pyenv's real interpreters first on PATH: its shims fail for versions not selected in PYENV_VERSION."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [sorted(glob.glob(str(root / f"{version}.*" / "bin")))[-1:] for version in versions]
    extra = [path for paths in found for path in paths]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


_expose_pyenv_interpreters(PYTHONS)
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests", "parity", "isolation"]


def _editable_packages() -> list[str]:
    args = []
    for folder in PACKAGES:
        args += ["-e", f"packages/{folder}"]
    return [*args, "-e", TEST_PLUGIN]


#: Peer-parity tests must run, never skip; a broken installed plugin is an error, never a warning.
_TEST_ENV = {"CLIP_REQUIRE_PEERS": "1", "CLIP_STRICT_PLUGINS": "1"}


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Unit, property and peer-parity tests (pytest + hypothesis) on one Python version. The browser tests of
    `clip serve` need Debian's chromium on PATH (`.ci/run` installs it)."""
    session.install(*_editable_packages(), *CORE_UNDER_TEST, *TEST_PEERS, *EVAL_PEERS)
    session.run("pytest", "-m", "not slow", *session.posargs, env=_TEST_ENV)


@nox.session(python=PYTHONS[-1])
def parity(session: nox.Session) -> None:
    """The slowest peer-parity cases (the largest cards, marked `slow`) once, on the newest Python."""
    session.install(*_editable_packages(), *CORE_UNDER_TEST, *TEST_PEERS, *EVAL_PEERS)
    session.run("pytest", "-m", "slow", "--durations=10", *session.posargs, env=_TEST_ENV)


@nox.session(python=PYTHONS[-1])
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff==0.17.*")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every package's sources (and the test plugin), at the oldest supported Python."""
    session.install(*_editable_packages(), *CORE_UNDER_TEST, "mypy==2.4.*", "types-PyYAML")
    modules = [arg for _, module in PACKAGES.values() for arg in ("-p", module)]
    session.run("mypy", *modules, "-p", "clip_test_towers")


@nox.session(python=PYTHONS[1] if len(PYTHONS) > 1 else PYTHONS[0])
def isolation(session: nox.Session) -> None:
    """Build every wheel; install each package alone (with clip-core) from wheels, with only its declared
    dependencies, into a fresh environment, and check that it imports, that `clip plugins` runs, and that each
    tower package builds and runs one of its cards end to end."""
    dist = Path(session.create_tmp()) / "dist"
    for folder in PACKAGES:
        session.run("uv", "build", "--quiet", "--wheel", "--out-dir", str(dist), f"packages/{folder}", external=True)
    for folder, (distribution, module) in PACKAGES.items():
        env = Path(session.create_tmp()) / f"env-{folder}"
        session.run("uv", "venv", "--quiet", "--clear", "-p", str(session.python), str(env), external=True)
        python = str(env / "bin" / "python")
        session.run(
            "uv", "pip", "install", "--quiet", "-p", python, "--find-links", str(dist), distribution, external=True
        )
        session.run(python, "-c", f"import {module}; print({module}.__name__, {module}.__version__)", external=True)
        session.run(str(env / "bin" / "clip"), "plugins", external=True)
        session.run(str(env / "bin" / "clip"), "cards", "schema", external=True, silent=True)
        if folder in SMOKE_CARDS:
            session.run(python, "-c", SMOKE, SMOKE_CARDS[folder], external=True)


@nox.session(python=PYTHONS[1] if len(PYTHONS) > 1 else PYTHONS[0])
def demo(session: nox.Session) -> None:
    """The main job: install the SDK with an example third-party plugin, show plugins and cards, then `clip demo`:
    train a tiny CLIP from scratch on generated shapes, report its zero-shot accuracy, save it (./clip-demo) and
    check that it reloads with the same scores. `nox -s demo -- --out DIR --seed N` passes options on."""
    session.install(*_editable_packages())
    session.run("clip", "plugins")
    session.run("clip", "cards", "list")
    session.run("clip", "demo", "--verify", *session.posargs)


@nox.session(python=PYTHONS[0])
def minimums(session: nox.Session) -> None:
    """Opt-in: the test suite against the lowest versions every package allows (uv --resolution=lowest-direct)."""
    session.install("--resolution=lowest-direct", *_editable_packages(), "packages/core[testing]")
    session.run("pytest", "-m", "not slow", "--ignore=tests/test_preprocess.py", *session.posargs)
