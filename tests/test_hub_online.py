"""The hub online, on the loopback interface: a small HTTP server written here answers the Hugging Face hub's API
(repository info, file tree, file downloads, repository creation, branches, uploads) for repositories held in
memory, and huggingface_hub's own client code talks to it. Loading downloads only the chosen layout's files into
the standard Hugging Face cache, which then serves offline; a push and a load by hub name make a round trip."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import open_clip
import pytest
import torch
from safetensors.torch import save as save_safetensors

import clip_core
from clip_core.cli import main


# -- a hub on the loopback interface -------------------------------------------------------------------------------
@dataclass
class Hub:
    """What the loopback hub holds, and the requests it was sent (``"GET /path"``)."""

    #: repo id -> {revision name or commit -> (commit, {file: bytes})}
    repos: dict[str, dict[str, tuple[str, dict[str, bytes]]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo_id: str, commit: str, files: dict[str, bytes], *refs: str) -> None:
        revisions = self.repos.setdefault(repo_id, {})
        revisions[commit] = (commit, files)
        for ref in refs:
            revisions[ref] = (commit, files)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _missing(self, kind: str) -> None:
        data = json.dumps({"error": f"{kind} not found"}).encode()
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound" if kind == "Repository" else f"{kind}NotFound")
        self.send_header("X-Error-Message", f"{kind} not found")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.hub.requests.append(f"{self.command} {self.path}")
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo_id = "/".join(parts[2:4])
            rest = parts[4:]
            revisions = self.hub.repos.get(repo_id)
            if revisions is None:
                return self._missing("Repository")
            if rest and rest[0] == "revision":
                revision = "/".join(rest[1:])
                rest = []
            elif rest and rest[0] == "tree":
                revision, rest = rest[1], ["tree"]
            else:
                revision = "main"
            if revision not in revisions:
                return self._missing("Revision")
            commit, files = revisions[revision]
            if rest == ["tree"]:
                return self._json(
                    200,
                    [
                        {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                        for name, data in files.items()
                    ],
                )
            return self._json(200, {"id": repo_id, "sha": commit, "siblings": [{"rfilename": n} for n in files]})
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            revisions = self.hub.repos.get(repo_id)
            if revisions is None:
                return self._missing("Repository")
            if revision not in revisions:
                return self._missing("Revision")
            commit, files = revisions[revision]
            if filename not in files:
                return self._missing("Entry")
            data = files[filename]
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        self._missing("Entry")

    def do_POST(self) -> None:
        _post(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _post(self: _Handler) -> None:
    """Repository creation, branches, README metadata validation, and commits of files sent inline (base64)."""

    self.hub.requests.append(f"POST {self.path}")
    length = int(self.headers.get("Content-Length") or 0)
    body = self.rfile.read(length) if length else b""
    path = unquote(urlsplit(self.path).path)
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "validate-yaml"]:
        return self._json(200, {"errors": [], "warnings": []})
    if parts[:3] == ["api", "repos", "create"]:
        payload = json.loads(body)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        self.hub.repos.setdefault(repo_id, {"main": ("0" * 40, {})})
        self.hub.created.append(payload)
        return self._json(200, {"url": f"{self.hub.endpoint}/{repo_id}"})
    repo_id = "/".join(parts[2:4])
    revisions = self.hub.repos.get(repo_id)
    if revisions is None:
        return self._missing("Repository")
    action, revision = parts[4], "/".join(parts[5:])
    if action == "branch":
        revisions.setdefault(revision, revisions["main"])
        return self._json(200, {})
    if revision not in revisions:
        return self._missing("Revision")
    if action == "preupload":
        files = json.loads(body)["files"]
        return self._json(
            200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        )
    if action == "commit":
        _, files = revisions[revision]
        files = dict(files)
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        commit = hashlib.sha1(json.dumps(sorted(files)).encode() + b"".join(files.values())).hexdigest()
        revisions[revision] = (commit, files)
        revisions[commit] = (commit, files)
        url = f"{self.hub.endpoint}/{repo_id}/commit/{commit}"
        return self._json(200, {"commitUrl": url, "commitOid": commit, "success": True})
    self._missing("Entry")


# -- tests ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The loopback hub as HF_ENDPOINT, a fresh HF_HOME, online, with a token, and no proxy in between."""
    for name in ("HF_HUB_CACHE", "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    state = Hub()
    handler = type("Handler", (_Handler,), {"hub": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", state.endpoint)
    # as if HF_ENDPOINT had been set before huggingface_hub was imported: older clients (0.25, the lowest allowed)
    # read it then, for file URLs and for the repository URL of a commit
    import huggingface_hub.file_download

    template = state.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", state.endpoint)
    for module in (huggingface_hub.constants, huggingface_hub.file_download):
        monkeypatch.setattr(module, "HUGGINGFACE_CO_URL_TEMPLATE", template, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def tiny_files(seed: int) -> tuple[clip_core.ClipModel, dict[str, bytes]]:
    torch.manual_seed(seed)
    model = clip_core.create_model("tiny").eval()
    card = model.card.model_dump_json(indent=2).encode()
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    return model, {"card.json": card, "model.safetensors": save_safetensors(state)}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(a.state_dict()[key], value) for key, value in b.state_dict().items())


def private(payload: dict[str, Any]) -> bool | None:
    """Whether a repository-creation request asks for a private repository (``visibility``, or older clients'
    ``private``), None when it leaves it to the hub."""
    if "visibility" in payload:
        return bool(payload["visibility"] == "private")
    return payload.get("private")


def downloads(hub: Hub) -> list[str]:
    """The files fetched, in order (GET .../resolve/...)."""
    return [line.rsplit("/", 1)[1] for line in hub.requests if line.startswith("GET") and "/resolve/" in line]


def test_a_repo_downloads_only_its_layouts_files_into_the_cache_and_then_loads_offline(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, files = tiny_files(seed=0)
    hub.add("someone/tiny", "a" * 40, {**files, "README.md": b"# tiny", "extra.bin": b"0" * 100}, "main")
    loaded = clip_core.load_checkpoint("hf-hub:someone/tiny")
    assert same_weights(loaded, model) and loaded.card == model.card
    assert sorted(downloads(hub)) == ["card.json", "model.safetensors"]
    snapshot = tmp_path / "hf-home" / "hub" / "models--someone--tiny" / "snapshots" / ("a" * 40)
    assert sorted(path.name for path in snapshot.iterdir()) == ["card.json", "model.safetensors"]
    assert (snapshot.parent.parent / "refs" / "main").read_text() == "a" * 40

    hub.requests.clear()
    assert same_weights(clip_core.load_checkpoint(f"hf-hub:someone/tiny@{'a' * 40}"), model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert same_weights(clip_core.create_model("hf-hub:someone/tiny"), model)
    assert hub.requests == []  # a cached commit, and offline: no request at all


def test_an_open_clip_repo_with_every_layout_loads_its_open_clip_safetensors_with_open_clips_embeddings(
    hub: Hub,
) -> None:
    model_cfg = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
    }
    torch.manual_seed(0)
    reference = open_clip.model.CLIP(**model_cfg).eval()
    state = {key: value.contiguous() for key, value in reference.state_dict().items()}
    files = {
        "open_clip_config.json": json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}).encode(),
        "open_clip_model.safetensors": save_safetensors(state),
        "open_clip_pytorch_model.bin": b"not read",
        "config.json": b"{}",
        "pytorch_model.bin": b"not read",
    }
    hub.add("laion/small", "b" * 40, files, "main")
    model = clip_core.create_model("hf-hub:laion/small")
    assert sorted(downloads(hub)) == ["open_clip_config.json", "open_clip_model.safetensors"]
    assert model.card.name == "inferred-small"
    torch.manual_seed(1)
    pixels = torch.randn(2, 3, 32, 32)
    ids = open_clip.get_tokenizer("ViT-B-32")(["a dog", "a cat on a mat"])
    with torch.no_grad():
        for ours, theirs in (
            (model.encode_image(pixels), reference.encode_image(pixels)),
            (model.encode_text(ids), reference.encode_text(ids)),
        ):
            assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-5


def test_branches_tags_and_commits_each_load_their_own_commit(hub: Hub) -> None:
    first, first_files = tiny_files(seed=1)
    second, second_files = tiny_files(seed=2)
    hub.add("someone/tiny", "1" * 40, first_files, "v1.0")
    hub.add("someone/tiny", "2" * 40, second_files, "main")
    assert same_weights(clip_core.load_checkpoint("hf-hub:someone/tiny@v1.0"), first)
    assert same_weights(clip_core.load_checkpoint("hf-hub:someone/tiny"), second)
    assert same_weights(clip_core.load_checkpoint(f"hf-hub:someone/tiny@{'1' * 40}"), first)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("hf-hub:someone/nothing", "no such repository (or it is private; log in with `hf auth login`)"),
        ("hf-hub:someone/tiny@v9", "the repository has no revision 'v9'"),
        ("hf-hub:someone/notes", "the repository holds none of the layouts clip-sdk reads (card.json + "),
    ],
)
def test_a_missing_repository_revision_or_layout_is_a_clip_error_saying_which(hub: Hub, name: str, reason: str) -> None:
    hub.add("someone/tiny", "a" * 40, tiny_files(seed=0)[1], "main")
    hub.add("someone/notes", "c" * 40, {"README.md": b"notes", "config.json": b"{}"}, "main")
    with pytest.raises(clip_core.PretrainedError) as excinfo:
        clip_core.load_checkpoint(name)
    assert reason in str(excinfo.value)
    assert str(excinfo.value).startswith(f"cannot load {name} from the Hugging Face hub ({hub.endpoint}/")


def test_a_push_creates_the_repository_and_branch_and_loads_back_by_its_hub_name(hub: Hub) -> None:
    model, _ = tiny_files(seed=3)
    url = model.push_to_hub("someone/pushed", revision="v1", private=True)
    assert url.startswith(f"{hub.endpoint}/someone/pushed/commit/")
    assert [(payload["organization"], payload["name"], private(payload)) for payload in hub.created] == [
        ("someone", "pushed", True)
    ]
    _, uploaded = hub.repos["someone/pushed"]["v1"]
    assert sorted(uploaded) == ["README.md", "card.json", "model.safetensors"]
    assert b'clip_core.create_model("hf-hub:someone/pushed@v1")' in uploaded["README.md"]
    assert hub.repos["someone/pushed"]["main"][1] == {}  # the branch got the commit, main did not
    loaded = clip_core.load_checkpoint("hf-hub:someone/pushed@v1")
    assert same_weights(loaded, model) and loaded.card == model.card


def test_clip_push_uploads_a_checkpoint(hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = tiny_files(seed=4)
    model.save_pretrained(tmp_path / "model")
    assert main(["push", str(tmp_path / "model"), "someone/cli", "--public"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"pushed to {hub.endpoint}/someone/cli/commit/")
    assert private(hub.created[0]) is False
    assert same_weights(clip_core.load_checkpoint("hf-hub:someone/cli"), model)
