"""``hf-hub:ORG/NAME[@REVISION]``: a model in a Hugging Face hub repository, fetched into the standard Hugging Face
cache (:func:`clip_core.hub.settings.hub_cache`) and loaded from there.

A repository may hold a model in three layouts, looked for in this order: this SDK's (``card.json`` +
``model.safetensors``), open_clip's (``open_clip_config.json`` + ``open_clip_model.safetensors`` or
``open_clip_pytorch_model.bin``) and transformers' (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``, or their sharded forms). Only the files of the first layout found are downloaded.
``REVISION`` is a branch, a tag or a commit (default ``main``); the files all come from the one commit it names.

When the network is consulted:

- a commit already in the cache (a pinned 40-hex revision) is used without any request;
- with ``HF_HUB_OFFLINE`` set, only the cache is read (``refs/<revision>`` names the commit, as huggingface_hub
  writes it);
- otherwise the hub (``HF_ENDPOINT``) is probed first, for a few seconds at most; when it cannot be reached, the
  cached commit of the revision is used if there is one, else :class:`PretrainedError` says what was tried.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from clip_core.errors import PretrainedError
from clip_core.hub.download import CONNECT_TIMEOUT, unreachable
from clip_core.hub.settings import hub_cache, hub_endpoint, hub_offline

__all__ = [
    "HUB_PREFIX",
    "HubName",
    "cached_snapshot",
    "hub_snapshot",
    "is_commit",
    "is_hub_name",
    "layout_files",
    "parse_hub_name",
]

#: The prefix of a hub name (open_clip's notation).
HUB_PREFIX = "hf-hub:"

_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_LAYOUTS = (
    "card.json + model.safetensors (clip-sdk), open_clip_config.json + open_clip_model.safetensors or "
    "open_clip_pytorch_model.bin (open_clip), or config.json + model.safetensors or pytorch_model.bin (transformers)"
)


@dataclass(frozen=True)
class HubName:
    """A model on the Hugging Face hub: a repository and, optionally, a revision (branch, tag or commit)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return HUB_PREFIX + self.repo_id + (f"@{self.revision}" if self.revision else "")

    @property
    def ref(self) -> str:
        """The revision asked for, ``main`` when none was."""
        return self.revision or "main"


def is_commit(revision: str) -> bool:
    """Whether ``revision`` is a commit (40 hex digits) rather than a branch or tag."""
    return _COMMIT.fullmatch(revision) is not None


def is_hub_name(value: object) -> bool:
    """Whether ``value`` is a string naming a hub model (``hf-hub:...``)."""
    return isinstance(value, str) and value.startswith(HUB_PREFIX)


def parse_hub_name(name: str) -> HubName:
    """``hf-hub:ORG/NAME[@REVISION]`` as a :class:`HubName`; :class:`PretrainedError` when it is malformed."""
    body = name.removeprefix(HUB_PREFIX)
    repo_id, _, revision = body.partition("@")
    revision = revision.strip()
    bad_revision = ".." in revision or revision.startswith("/") or any(char.isspace() for char in revision)
    if not _REPO.fullmatch(repo_id) or ".." in repo_id or ("@" in body and not revision) or bad_revision:
        raise PretrainedError(
            f"{name!r}: expected hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION (a branch, tag or commit)"
        )
    return HubName(repo_id, revision or None)


def layout_files(files: Collection[str]) -> list[str] | None:
    """The files to fetch from a repository holding ``files``: those of the first layout it has, or None."""
    from clip_core.checkpoints.hf import CONFIG_FILE as HF_CONFIG
    from clip_core.checkpoints.hf import WEIGHT_FILES as HF_WEIGHTS
    from clip_core.checkpoints.native import CARD_FILE, WEIGHTS_FILE
    from clip_core.checkpoints.openclip import CONFIG_FILE as OPEN_CLIP_CONFIG
    from clip_core.checkpoints.openclip import WEIGHT_FILES as OPEN_CLIP_WEIGHTS

    folders: tuple[tuple[str, tuple[str, ...]], ...] = (
        (CARD_FILE, (WEIGHTS_FILE,)),
        (OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS),
    )
    for config, weights in folders:
        chosen = next((name for name in weights if name in files), None)
        if config in files and chosen is not None:
            return [config, chosen]
    chosen = next((name for name in HF_WEIGHTS if name in files), None)
    if HF_CONFIG not in files or chosen is None:
        return None
    if not chosen.endswith(".index.json"):
        return [HF_CONFIG, chosen]
    stem, suffix = chosen.removesuffix(".index.json").rsplit(".", 1)
    shards = sorted(name for name in files if name.startswith(f"{stem}-") and name.endswith(f".{suffix}"))
    return [HF_CONFIG, chosen, *shards]


def cached_snapshot(name: HubName, cache: Path | None = None) -> Path | None:
    """The folder of ``name``'s commit in the Hugging Face cache, or None; makes no request.

    The commit is the revision itself when it is one, else the one ``refs/<revision>`` names.
    """
    folder = (cache or hub_cache()) / ("models--" + name.repo_id.replace("/", "--"))
    commit: str | None = name.ref if is_commit(name.ref) else None
    if commit is None:
        ref = folder / "refs" / name.ref
        try:
            commit = ref.read_text(encoding="utf-8").strip()
        except OSError:
            return None
    snapshot = folder / "snapshots" / commit
    return snapshot if is_commit(commit) and snapshot.is_dir() else None


def hub_snapshot(name: str | HubName, *, timeout: float = CONNECT_TIMEOUT) -> Path:
    """The local folder of the hub model ``name``, from the Hugging Face cache or downloaded into it (see the
    module docstring); :class:`PretrainedError` saying what was tried and why it failed."""
    hub = parse_hub_name(name) if isinstance(name, str) else name
    cache = hub_cache()
    endpoint = hub_endpoint()
    what = f"cannot load {hub} from the Hugging Face hub ({endpoint}/{hub.repo_id})"
    cached = cached_snapshot(hub, cache)
    if cached is not None and (is_commit(hub.ref) or hub_offline()):
        return cached
    not_cached = f"revision {hub.ref!r} is not in the Hugging Face cache {cache}"
    if hub_offline():
        raise PretrainedError(f"{what}: HF_HUB_OFFLINE is set and {not_cached}")
    reason = unreachable(endpoint, timeout)
    if reason is not None:
        if cached is not None:
            return cached
        raise PretrainedError(f"{what}: {reason}, and {not_cached}")
    return _download(hub, cache, endpoint, what, timeout)


def _download(hub: HubName, cache: Path, endpoint: str, what: str, timeout: float) -> Path:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from clip_core import __version__

    try:
        info = HfApi(endpoint=endpoint, library_name="clip-sdk", library_version=__version__).model_info(
            hub.repo_id, revision=hub.revision, timeout=timeout
        )
        files = layout_files({sibling.rfilename for sibling in info.siblings or ()})
        if files is None:
            raise PretrainedError(f"{what}: the repository holds none of the layouts clip-sdk reads ({_LAYOUTS})")
        folder = Path(
            snapshot_download(
                hub.repo_id,
                revision=hub.revision,
                cache_dir=cache,
                endpoint=endpoint,
                allow_patterns=files,
                etag_timeout=timeout,
                library_name="clip-sdk",
                library_version=__version__,
            )
        )
    except GatedRepoError:
        raise PretrainedError(
            f"{what}: the repository is gated; accept its conditions on {endpoint}/{hub.repo_id} and log in with "
            "`hf auth login` (or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise PretrainedError(f"{what}: the repository has no revision {hub.ref!r}") from None
    except RepositoryNotFoundError:
        raise PretrainedError(f"{what}: no such repository (or it is private; log in with `hf auth login`)") from None
    except HfHubHTTPError as exc:
        raise PretrainedError(f"{what}: {_first_line(exc)}") from None
    except PretrainedError:
        raise
    except Exception as exc:  # network errors after the probe, a full disk, ...
        raise PretrainedError(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from None
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise PretrainedError(f"{what}: the download left out {', '.join(missing)}")
    return folder


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
