"""`musicsep` console script.

Each sub-command lives in its own module exposing `add_parser(subparsers)`; the parser sets
`func(args) -> int`. Modules import only the standard library at top level so that `--help` is
instant; torch, demucs and the server are imported inside the handlers.

`pip install musicsep` has the clients only, so `submit` is the one command that runs there; the
others import the server's packages in their handlers, and a missing one is reported as the extra
to install, not as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order `--help` lists them. A module missing here is not a command.
COMMANDS = ("separate", "analyze", "models", "serve", "worker", "submit", "demo")

EXIT_USAGE = 2

#: The extra a command needs when it is not the server's (`submit` needs none: it is a client).
EXTRA_FOR = {"worker": "scaleout"}
INSTALL_HINT = (
    "`submit` runs with `pip install musicsep` (the clients); the other commands need the server: "
    "`pip install 'musicsep[server]'` (`worker`: 'musicsep[scaleout]')."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicsep",
        description="Separate songs into stems with Demucs, streamed chunk by chunk.",
        epilog=INSTALL_HINT,
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
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing == "musicsep":
            raise  # a bug in musicsep, not an extra this install lacks
        extra = EXTRA_FOR.get(args.command, "server")
        print(
            f"musicsep {args.command}: this install lacks the Python package '{missing}'; "
            f"the command needs `pip install 'musicsep[{extra}]'` (plain `pip install musicsep` is the clients)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
