"""The ``mmgcn`` command line: ``datasets``, ``extract``, ``train``, ``evaluate``,
``recommend``, ``bench``, ``report``.

Each sub-command lives in its own module under ``mmgcn.cli`` that exposes
``add_parser(subparsers)``; the parser it adds sets ``func`` to a callable taking the
parsed ``argparse.Namespace`` and returning an exit code. This is the only package that
knows argparse.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence

from mmgcn import __version__
from mmgcn.errors import MmgcnError

# module names under mmgcn.cli, in the order they appear in --help
COMMAND_MODULES = ("datasets", "extract", "train", "recommend", "bench")

log = logging.getLogger("mmgcn")

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmgcn", description="Multimodal recommendation with graph convolution: data, training, benchmarks."
    )
    parser.add_argument("--version", action="version", version=f"mmgcn {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--debug", action="store_true", help="print the traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mmgcn.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mmgcn.cli.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status.

    0: success. 1: the command ran and reports a failure (e.g. failed benchmark cells), or
    an unexpected internal error (a bug: a short note, the traceback saved to a file,
    ``--debug`` prints it). 2: a usage error or a typed error
    (:class:`mmgcn.errors.MmgcnError`, or a file-system error naming its path), printed as
    one line ``mmgcn: error: ...``. 130: interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except (MmgcnError, OSError) as exc:
        # user-facing: bad input, refused operation, a missing / unreadable / unwritable file
        if args.debug:
            traceback.print_exc()
        print(f"mmgcn: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug: say so briefly, keep the traceback for the report
        if args.debug:
            traceback.print_exc()
            where = "printed above"
        else:
            where = f"saved to {_save_traceback()}; rerun with --debug to print it"
        print(
            f"mmgcn: internal error: {type(exc).__name__}: {one_line(exc)} -- this is a bug in mmgcn, "
            f"please report it with the traceback ({where})",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (multi-line details joined with ``; ``)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {exc.strerror or text}"
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    return "; ".join(parts) or type(exc).__name__


def _save_traceback() -> str:
    fd, path = tempfile.mkstemp(prefix="mmgcn-traceback-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"mmgcn {__version__}, argv {sys.argv}\n")
        handle.write(traceback.format_exc())
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
