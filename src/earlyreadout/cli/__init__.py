"""The `earlyreadout` command: argument parsing -> config -> recipe; user errors -> one line, exit 2."""

from __future__ import annotations

import argparse
import re
import sys
import warnings

from earlyreadout.cli import data, inspection, training  # noqa: F401  (each registers its commands)
from earlyreadout.cli.base import COMMANDS
from earlyreadout.errors import UserError


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `command`, only that command's options are set up (they import the module
    that declares them, so `earlyreadout list` need not import Optuna)."""
    p = argparse.ArgumentParser(prog="earlyreadout", description="Find and remove shortcut learning with early readouts.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (help, setup, run) in COMMANDS.items():
        sp = sub.add_parser(name, help=help, description=help)
        if command in (None, name):
            setup(sp)
        sp.set_defaults(run=run)
    return p


OVERRIDE = re.compile(r"^((method|data|model|train|search)\.[\w.]+|out)=")


def overrides_last(argv: list[str]) -> list[str]:
    """`argv` with the key=value overrides moved after every flag (argparse reads positionals only there),
    so `train method.lr=0.1 --out runs/x` works as written."""
    return [a for a in argv if not OVERRIDE.match(a)] + [a for a in argv if OVERRIDE.match(a)]


def show_warning(message: Warning | str, category: type[Warning], *_args: object, **_kwargs: object) -> None:
    """A warning as one line on stderr (`earlyreadout: warning: ...`), not Python's file:line form."""
    print(f"earlyreadout: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():  # the warnings' printer is put back when the command returns
        warnings.showwarning = show_warning
        return run_command(argv)


def run_command(argv: list[str] | None) -> int:
    """Parse `argv` and run its command; user errors become one line and exit code 2."""
    argv = overrides_last(sys.argv[1:] if argv is None else argv)
    args = parser(next((a for a in argv if not a.startswith("-")), None)).parse_args(argv)
    try:
        return args.run(args)
    except UserError as e:
        print(f"earlyreadout {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed epochs are saved (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
