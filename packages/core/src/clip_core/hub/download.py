"""Getting pretrained weights into the cache: URL downloads and Hugging Face hub files.

URL downloads (:func:`download_url`) stream to ``<file>.partial`` beside their place in the cache, resume an
interrupted transfer with an HTTP ``Range`` request (within one call, and in the next call after a failure),
check the SHA-256 when one is known (a mismatch deletes the file), and only then rename the file into place, so a
file in the cache is always complete. A lock file keeps two processes from writing the same file. Hub files
(:func:`download_hub`) go through ``huggingface_hub.hf_hub_download`` into the standard Hugging Face cache.

Before any request, the server (or the proxy in between) is probed with a short, bounded DNS lookup and TCP
connect, so that without a network a request fails within seconds with a :class:`PretrainedError` saying what
was tried and why, instead of hanging in retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from clip_core.errors import PretrainedError
from clip_core.hub.cache import lock_path, url_cache_path
from clip_core.hub.pretrained import PretrainedWeights
from clip_core.hub.settings import hub_cache, hub_endpoint, hub_offline

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "download_hub",
    "download_url",
    "fetch_weights",
    "sha256_file",
    "unreachable",
]

#: Seconds the probe of a server (DNS lookup and TCP connect together) may take before the network counts as down.
CONNECT_TIMEOUT = 10.0
#: Seconds a download may wait for the next bytes before the transfer counts as interrupted (and is resumed).
READ_TIMEOUT = 60.0

_CHUNK = 1 << 20


class _Unreachable(Exception):
    """The probe found no way to the server; the message says why."""


class _Interrupted(Exception):
    """A transfer stopped before the end of the file; the partial file is kept for resuming."""


def fetch_weights(weights: PretrainedWeights, *, root: Path | None = None, progress: bool | None = None) -> Path:
    """The local file of ``weights``: from the cache, else downloaded into it (see :func:`download_url` and
    :func:`download_hub`; ``root`` is the cache directory of URL downloads). :class:`PretrainedError` says what was
    tried and why it failed."""
    if weights.url is not None:
        return download_url(weights.url, sha256=weights.sha256, root=root, progress=progress)
    return download_hub(str(weights.hf_hub_id), weights.hub_filenames(), sha256=weights.sha256)


# -- URLs ---------------------------------------------------------------------------------------------------------
def download_url(
    url: str,
    *,
    sha256: str | None = None,
    root: Path | None = None,
    progress: bool | None = None,
    timeout: float = CONNECT_TIMEOUT,
    retries: int = 3,
) -> Path:
    """Download ``url`` into the cache (``root``, default :func:`clip_core.hub.cache.cache_dir`) and return its path.

    A file already in the cache is returned without any request. Otherwise the server is probed (``timeout``
    seconds for DNS and connect together), the file streams to ``<file>.partial`` with a progress bar
    (``progress``: None shows one on a terminal), an interrupted transfer is resumed with a ``Range`` request up to
    ``retries`` times (and by the next call after that), the SHA-256 is checked when given, and the file is renamed
    into place. A checksum mismatch deletes the download and raises :class:`PretrainedError` naming both hashes.
    """
    target = url_cache_path(url, root)
    if target.is_file():
        return target
    what = f"cannot download {url}"
    try:
        lock = lock_path(url, root)
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainedError(f"{what}: cannot write to the cache directory ({exc})") from None
    from filelock import FileLock, Timeout

    file_lock = FileLock(str(lock))
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        print(f"clip: waiting for another process downloading {url}", file=sys.stderr)
        file_lock.acquire()
    try:
        if target.is_file():  # the other process finished it
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            _probe(url, timeout)
        except _Unreachable as exc:
            raise PretrainedError(f"{what}: {exc}") from None
        for attempt in range(retries + 1):
            try:
                _transfer(url, partial, progress, what)
                break
            except _Interrupted as exc:
                if attempt == retries:
                    raise PretrainedError(
                        f"{what}: the transfer was interrupted ({exc}); the {_size(partial)} received are kept in "
                        f"{partial} and the next attempt resumes from there"
                    ) from None
                time.sleep(0.5 * (attempt + 1))
        actual = sha256_file(partial)
        if sha256 is not None and actual != sha256:
            partial.unlink()
            raise PretrainedError(
                f"{what}: SHA-256 mismatch (expected {sha256}, got {actual}); the downloaded file was deleted"
            )
        os.replace(partial, target)
        return target
    except OSError as exc:  # writing into the cache: permissions, a full disk
        raise PretrainedError(f"{what}: {exc}") from None
    finally:
        _remove_empty(target.parent)  # when nothing was downloaded, leave no empty folder behind
        file_lock.release()


def _transfer(url: str, partial: Path, progress: bool | None, what: str) -> None:
    """Fetch ``url`` into ``partial``, resuming from its current size; :class:`_Interrupted` if cut short."""
    from clip_core import __version__

    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": f"clip-sdk/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=READ_TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # nothing left to send: the partial file holds the whole file, or is bad
            total = _range_total(exc.headers.get("Content-Range"))
            if total == offset:
                return
            partial.unlink()
            raise _Interrupted("the server cannot resume this partial file; starting again") from None
        raise PretrainedError(f"{what}: HTTP error {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError)):  # worth a retry
            raise _Interrupted(_reason(exc.reason)) from None
        raise PretrainedError(f"{what}: {_reason(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(_reason(exc)) from None
    with response:
        if response.status == 206:  # the rest of the file, from where the partial file ends
            if not offset or _range_start(response.headers.get("Content-Range")) != offset:
                partial.unlink(missing_ok=True)
                raise _Interrupted("the server sent another part of the file than asked for; starting again")
            mode = "ab"
        else:  # the whole file (the first request, or a server that ignores ranges)
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with open(partial, mode) as out:
            received = offset + _copy(response, out, total, offset, progress, partial.name.removesuffix(".partial"))
    if total is not None and received < total:
        raise _Interrupted(f"the connection closed after {received:,} of {total:,} bytes")


def _copy(response: Any, out: IO[bytes], total: int | None, offset: int, progress: bool | None, name: str) -> int:
    """Stream ``response`` into ``out`` with a progress bar; the number of bytes copied."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    copied = 0
    disable = None if progress is None else not progress  # None: only on a terminal
    with tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=disable
    ) as bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                out.flush()
                raise _Interrupted(f"{_reason(exc)} after {offset + copied:,} bytes") from None
            if not chunk:
                return copied
            out.write(chunk)
            copied += len(chunk)
            bar.update(len(chunk))


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``bytes START-END/TOTAL``."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    start = content_range[6:].split("-", 1)[0]
    return int(start) if start.isdigit() else None


def _range_total(content_range: str | None) -> int | None:
    """The total of ``bytes */TOTAL`` (or ``bytes START-END/TOTAL``)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1]
    return int(total) if total.isdigit() else None


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size(path: Path) -> str:
    return f"{path.stat().st_size:,} bytes" if path.exists() else "0 bytes"


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or gone
        folder.rmdir()


# -- the Hugging Face hub -----------------------------------------------------------------------------------------
def download_hub(
    repo_id: str,
    filenames: Sequence[str],
    *,
    sha256: str | None = None,
    cache: Path | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> Path:
    """The first of ``filenames`` that the hub repository ``repo_id`` has, from the cache or downloaded into it.

    A file already in the Hugging Face cache (``cache``, default :func:`clip_core.hub.settings.hub_cache`) is
    returned without any request; ``HF_HUB_OFFLINE`` stops there. Otherwise the hub endpoint (``HF_ENDPOINT``,
    default https://huggingface.co) is probed (``timeout`` seconds) before ``huggingface_hub.hf_hub_download``
    runs, so that without a network the call fails within seconds. With ``sha256``, the file is checked after
    download (a mismatch deletes it).
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from clip_core import __version__

    folder = cache or hub_cache()
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=folder)
        if isinstance(cached, str) and Path(cached).is_file():
            return Path(cached)
    endpoint = hub_endpoint()
    what = f"cannot download {' or '.join(filenames)} from the Hugging Face hub repository {endpoint}/{repo_id}"
    if hub_offline():
        raise PretrainedError(f"{what}: HF_HUB_OFFLINE is set and the file is not in the cache {folder}")
    try:
        _probe(endpoint, timeout)
    except _Unreachable as exc:
        raise PretrainedError(f"{what}: {exc}") from None
    missing = []
    for filename in filenames:
        try:
            path = Path(
                hf_hub_download(
                    repo_id,
                    filename,
                    cache_dir=folder,
                    endpoint=endpoint,
                    etag_timeout=timeout,
                    library_name="clip-sdk",
                    library_version=__version__,
                )
            )
        except LocalEntryNotFoundError as exc:  # the hub stopped answering after the probe
            raise PretrainedError(f"{what}: the hub could not be reached ({_first_line(exc)})") from None
        except EntryNotFoundError:
            missing.append(filename)
            continue
        except GatedRepoError:
            raise PretrainedError(
                f"{what}: the repository is gated; accept its conditions on {endpoint}/{repo_id} and log in with "
                "`hf auth login` (or set HF_TOKEN)"
            ) from None
        except RepositoryNotFoundError:
            raise PretrainedError(f"{what}: no such repository (or it is private)") from None
        except HfHubHTTPError as exc:
            raise PretrainedError(f"{what}: {_first_line(exc)}") from None
        except Exception as exc:  # network errors after retries, a full disk, ...
            raise PretrainedError(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from None
        if sha256 is not None:
            actual = sha256_file(path)
            if actual != sha256:
                blob = path.resolve()
                path.unlink()
                blob.unlink(missing_ok=True)
                raise PretrainedError(
                    f"{what}: SHA-256 mismatch of {filename} (expected {sha256}, got {actual}); the downloaded file "
                    "was deleted"
                )
        return path
    raise PretrainedError(f"{what}: the repository has no file {' or '.join(missing)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- probing the network ------------------------------------------------------------------------------------------
def unreachable(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why the server of ``url`` (or the proxy for it) cannot be reached within ``timeout`` seconds, or None when it
    accepts a connection."""
    try:
        _probe(url, timeout)
    except _Unreachable as exc:
        return str(exc)
    return None


def _probe(url: str, timeout: float) -> None:
    """Check within ``timeout`` seconds that the server of ``url`` (or the proxy for it) accepts a TCP connection;
    :class:`_Unreachable` saying why not (DNS failure, connection refused, no answer)."""
    host, port = _contact(url)
    deadline = time.monotonic() + timeout
    addresses = _resolve(host, port, timeout)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses[:4]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(remaining)
                sock.connect(address)
                return
        except OSError as exc:
            last = exc
    if last is None or isinstance(last, TimeoutError):
        raise _Unreachable(f"no network: {host}:{port} did not answer within {timeout:g} s")
    raise _Unreachable(f"cannot connect to {host}:{port} ({_reason(last)})")


def _contact(url: str) -> tuple[str, int]:
    """The host and port a request for ``url`` connects to: the server's, or the configured proxy's."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxy_parts.hostname or "", proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
    return host, port


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """``getaddrinfo`` bounded by ``timeout`` (the system resolver has no timeout of its own to set)."""
    found: list[Any] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, name="clip-dns-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _Unreachable(f"no network: the DNS lookup of {host} got no answer within {timeout:g} s")
    if failed or not found:
        reason = (failed[0].strerror or str(failed[0])) if failed else "no address"
        raise _Unreachable(f"no network, or no such host: the DNS lookup of {host} failed ({reason})")
    return found


def _reason(error: object) -> str:
    """A short reason for a network error."""
    if isinstance(error, socket.gaierror):
        return f"DNS lookup failed: {error.strerror or error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed early"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return text or type(error).__name__
