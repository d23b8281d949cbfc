"""The ``serums`` command.

Each area registers its sub-commands from a module in ``serums/commands/`` exposing
``register(subparsers)``; a sub-command's handler takes the parsed arguments and returns an exit
code. Expected failures (bad input, missing network, …) raise ``CommandError`` or one of the
areas' own error types and are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from . import __version__
from .config import Settings, SettingsError

# Exceptions whose message is a complete, user-facing explanation.
USER_ERRORS: tuple[type[BaseException], ...] = ()


class CommandError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def host_port(text: str) -> str:
    """argparse type for ``host:port`` (port 0–65535): a one-line usage error otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port (e.g. 127.0.0.1:8000)")
    return text


def _user_errors() -> tuple[type[BaseException], ...]:
    from network import ConfigError, IdentityError

    return (CommandError, ConfigError, IdentityError, SettingsError, *USER_ERRORS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serums",
        description="SERUMS: share confidential patient records over a permissioned ledger.",
    )
    parser.add_argument("--version", action="version", version=f"serums {__version__}")
    parser.add_argument(
        "--data-dir", help="where all state of the embedded default lives (env SERUMS_DATA_DIR)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if getattr(args, "command", None) in ("up", "demo") and not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # these commands print their own progress
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from .datadir import private_umask

    previous = private_umask()  # what serums creates (data directory, stores, keys, logs) is 0600 in 0700
    try:
        args.settings = Settings.from_env(data_dir=args.data_dir)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("serums: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        print(f"serums: {exc}", file=sys.stderr)
        return getattr(exc, "code", 1)
    finally:
        os.umask(previous)  # main() called in-process (tests) leaves the caller's umask as it was


if __name__ == "__main__":  # run as `python -m serums`, so that exception classes have one identity
    from serums.cli import main as _main

    sys.exit(_main())
