"""The search page at ``/``: a text box, an image upload and a grid of results, rendered on the server.

It works without JavaScript (``GET /?q=a+red+circle``) and runs none: the page's Content-Security-Policy forbids
scripts, and every piece of text (queries, file names, texts of the rows, messages) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import PurePath

from clip_core.index import SearchHit

__all__ = ["CONTENT_SECURITY_POLICY", "PageState", "render_page"]

#: No scripts, no objects, images and forms from this server only, the page's own inline style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem 1.5rem; color: #222; }
header h1 { font-size: 1.4rem; margin: 0 0 .2rem; } header p { margin: 0 0 1rem; color: #666; }
form { display: flex; gap: .5rem; margin: 0 0 .6rem; align-items: center; }
input[type=search] { flex: 1; font-size: 1rem; padding: .45rem .6rem; }
input[type=number] { width: 4.5rem; padding: .4rem; }
button { padding: .45rem 1rem; font-size: .95rem; }
.message { padding: .6rem .8rem; background: #fff4f4; border: 1px solid #e3b4b4; border-radius: 4px; }
.query { color: #555; margin: 1rem 0 .6rem; }
ol.grid { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
  gap: 14px; }
ol.grid li { border: 1px solid #ddd; border-radius: 6px; overflow: hidden; background: #fafafa; }
ol.grid img { display: block; width: 100%; height: 150px; object-fit: cover; background: #eee; }
ol.grid .text { padding: .6rem; min-height: 5rem; }
ol.grid .caption { padding: .35rem .5rem; font-size: .8rem; overflow-wrap: anywhere; }
ol.grid .score { font-weight: 600; font-variant-numeric: tabular-nums; margin-right: .4rem; }
"""


@dataclass(frozen=True)
class PageState:
    """What the page shows: the service, the query, its hits (None: no search yet) and any message."""

    model: str
    searched: str | None
    rows: int | None
    query: str = ""
    top_k: int = 24
    hits: Sequence[SearchHit] | None = None
    query_label: str = ""
    message: str | None = None


def render_page(state: PageState, has_image: Callable[[int], bool]) -> str:
    """The page's HTML; ``has_image(row)`` says whether a row is shown as a thumbnail or as its text."""
    about = f"model {state.model}"
    if state.searched is not None:
        about += f" · searching {state.searched}" + (f" ({state.rows:,} rows)" if state.rows is not None else "")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(state.query + ' · ' if state.query else '')}clip search</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<header><h1>clip search</h1><p>{escape(about)}</p></header>",
        '<form method="get" action="/" role="search">',
        f'<input type="search" name="q" value="{escape(state.query)}" placeholder="a red circle" '
        'aria-label="text query" autofocus>',
        f'<input type="number" name="k" value="{state.top_k}" min="1" max="200" aria-label="results">',
        "<button>Search</button></form>",
        '<form method="post" action="/" enctype="multipart/form-data">',
        '<input type="file" name="image" accept="image/*" aria-label="image query">',
        f'<input type="hidden" name="k" value="{state.top_k}">',
        "<button>Search by image</button></form>",
    ]
    if state.searched is None:
        parts.append('<p class="message">No embeddings are served: start clip serve with --embeddings FILE.</p>')
    if state.message:
        parts.append(f'<p class="message">{escape(state.message)}</p>')
    if state.hits is not None:
        parts.append(f'<p class="query">{len(state.hits)} results for {escape(state.query_label)}</p>')
        parts.append('<ol class="grid">')
        parts += [_result(hit, has_image(hit.row)) for hit in state.hits]
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _result(hit: SearchHit, image: bool) -> str:
    source = escape(hit.source)
    caption = f'<div class="caption"><span class="score">{hit.score:.4f}</span>'
    if image:
        picture = f'<img src="/thumbnails/{hit.row}" alt="{source}" title="{source}">'
        name = escape(PurePath(hit.source).name or hit.source)
        return f'<li>{picture}{caption}<span class="source">{name}</span></div></li>'
    return f'<li><div class="text">{source}</div>{caption}row {hit.row}</div></li>'
