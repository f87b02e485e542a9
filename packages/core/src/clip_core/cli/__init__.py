"""The ``clip`` command line. User errors print one line and exit with status 2; a broken plugin left out prints one
``clip: warning:`` line.

Each module holds a group of commands and adds them with ``add_parsers(commands)``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from clip_core.cli import catalog, evaluation, index, inference, serving, training, weights
from clip_core.errors import ClipError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from clip_core import __version__

    parser = argparse.ArgumentParser(prog="clip", description="clip-sdk: CLIP-family models, cards and plugins.")
    parser.add_argument("--version", action="version", version=f"clip-core {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (catalog, weights, inference, index, evaluation, training, serving):
        group.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``clip`` command line; returns the exit status (2 for user errors)."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], None] = args.run
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            run(args)
        except ClipError as exc:
            print(f"clip: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # e.g. `clip cards schema | head`
            sys.stderr.close()
    return 0


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A plugin left out as one line on stderr (not Python's two, with the file and source line of clip-core that
    warned); other warnings as Python shows them."""
    from clip_core.registry import PluginWarning

    if issubclass(category, PluginWarning):
        print(f"clip: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning
