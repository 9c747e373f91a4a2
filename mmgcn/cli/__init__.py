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
import sys
from collections.abc import Sequence

from mmgcn import __version__

# module names under mmgcn.cli, in the order they appear in --help
COMMAND_MODULES = ("datasets", "extract", "train", "recommend", "bench")

log = logging.getLogger("mmgcn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmgcn", description="Multimodal recommendation with graph convolution: data, training, benchmarks."
    )
    parser.add_argument("--version", action="version", version=f"mmgcn {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
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
    except (ValueError, KeyError, OSError) as exc:
        # user-facing errors (DataError, ConfigError, missing files) without a traceback;
        # -vv shows it
        if args.verbose >= 2:
            raise
        print(f"mmgcn: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
