"""``recloop`` command line: data | train | evaluate | replay | serve | log | demo | bench.

Each sub-command lives in its own module with ``add_parser(subparsers)``, which
registers the command and sets ``func`` to a callable taking the parsed arguments and
returning an exit code. Errors from the library become exit code 2 and one line here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from recloop.errors import RecloopError

_COMMANDS = ("data_cmd", "train_cmd", "replay_cmd", "serve_cmd", "log_cmd", "demo_cmd")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"recloop: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recloop", description="A real-time recommender engine that learns from every click."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"recloop.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"recloop.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code = args.func(args)
    except RecloopError as exc:
        print(f"recloop: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"recloop: error: {exc.filename or exc}: no such file or directory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recloop: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
