"""`musicsep` console script.

Each sub-command lives in its own module exposing `add_parser(subparsers)`; the parser sets
`func(args) -> int`. Modules import only the standard library at top level so that `--help` is
instant; torch, demucs and the server are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order `--help` lists them. A module missing here is not a command.
COMMANDS = ("separate", "analyze", "models", "serve", "worker", "submit", "demo")

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicsep",
        description="Separate songs into stems with Demucs, streamed chunk by chunk.",
    )
    from musicsep import __version__

    parser.add_argument("--version", action="version", version=f"musicsep {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"musicsep.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"musicsep.cli.{name}":
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from pydantic import ValidationError

    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:  # Settings refused the environment or the config file
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"musicsep: bad setting: {problems}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
