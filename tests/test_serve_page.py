"""The search page of `clip serve` in a real browser: Debian's headless Chromium loads `/?q=...` (no JavaScript).

Specifications: the page rendered on the server lists the results with their thumbnails, the browser fetches and
draws every thumbnail, and a file name made of HTML stays text. The screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clip_core.embedding.file import read_embeddings

httpx = pytest.importorskip("httpx")  # with the serve extra: nox installs both (CI never skips)
pytest.importorskip("fastapi")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
THUMBNAILS_SERVED = re.compile(r'^clip_requests_total\{route="/thumbnails/\{row\}",status="200"\} (\d+)$', re.M)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; its absence fails the tests where the peers are required (CI), else skips them."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CLIP_REQUIRE_PEERS"):
            pytest.fail("the browser tests need chromium: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def thumbnails_served(url: str) -> int:
    found = THUMBNAILS_SERVED.search(httpx.get(f"{url}/metrics", timeout=60).text)
    return int(found.group(1)) if found else 0


def test_chromium_shows_the_results_of_a_text_query_with_every_thumbnail(
    served_library: Any, chromium: str, tmp_path: Path
) -> None:
    url = served_library.server.url
    rows = len(read_embeddings(served_library.embeddings).entries)
    before = thumbnails_served(url)
    dom = browse(chromium, tmp_path / "profile", "--dump-dom", f"{url}/?q=a+red+circle").stdout
    thumbnails = re.findall(r'<img src="/thumbnails/(\d+)"', dom)
    assert sorted(map(int, thumbnails)) == list(range(rows))
    assert thumbnails_served(url) - before >= rows  # the browser fetched each picture, and each was served
    assert f"{rows} results for “a red circle”" in dom
    assert 'value="a red circle"' in dom
    assert '<img src="x"' not in dom and "onerror=alert(1)&gt;.png" in dom  # the HTML-named file is text


def test_chromium_draws_the_thumbnails_in_a_screenshot(served_library: Any, chromium: str, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve-page.png"
    shot.unlink(missing_ok=True)
    url = served_library.server.url
    browse(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1100,700", f"{url}/?q=a+red+circle")
    with Image.open(shot) as image:
        assert image.size == (1100, 700)
        pixels = np.asarray(image.convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    red = int(((r > 190) & (g < 70) & (b < 70)).sum())  # the red circle's thumbnail, drawn
    blue = int(((r < 70) & (g < 100) & (b > 190)).sum())  # the blue square's
    assert red > 500 and blue > 500
