"""What every command shares: the run options, flag -> config key mapping, declared-option flags, the
command registry."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from earlyreadout.params import Param

# Flags of `train` that map onto config keys.
TRAIN_FLAGS = {
    "method": "method.name", "data": "data.name", "model": "model.name", "epochs": "train.epochs",
    "seed": "train.seed", "batch_size": "train.batch_size", "lr": "method.lr", "out": "out",
    "device": "train.device", "data_root": "data.root", "weights": "model.weights",
    "teacher": "method.teacher", "student": "model.name",  # distill's flags (the student wins over --model)
}


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every command that trains accepts: a YAML file, common flags, key=value overrides."""
    p.add_argument("-c", "--config", help="YAML config file (sections: method, data, model, train, out)")
    p.add_argument("--method", help="training method (see `earlyreadout list`)")
    p.add_argument("--data", help="dataset name")
    p.add_argument("--model", help="model name (default: the dataset's)")
    from earlyreadout.config import TRAIN_OPTIONS  # the declarations (importing them loads every registry)
    from earlyreadout.methods.base import OPTIMIZER_HPARAMS

    for name in ("epochs", "seed", "batch_size"):
        spec = TRAIN_OPTIONS[name]
        p.add_argument("--" + name.replace("_", "-"), type=spec.type,
                       help=f"{spec.help} (train.{name}; default {spec.default!r})")
    lr = OPTIMIZER_HPARAMS["lr"]
    p.add_argument("--lr", type=float, help=f"{lr.help} (method.lr; default: the method's, mostly {lr.default!r})")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data-root", help="folder holding the dataset release (real datasets: waterbirds, celeba, ...)")
    p.add_argument("--weights", help="local file of pretrained weights for the model (resnet, timm)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any config key, e.g. method.forget_every=5")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """{config key: typed value} of the flags given (explicit key=value overrides are applied after, and win)."""
    return {key: getattr(args, name) for name, key in TRAIN_FLAGS.items() if getattr(args, name, None) is not None}


def report_run(result: dict, out: str) -> None:
    """Print a finished run's results table; under torchrun only the first process prints."""
    from earlyreadout.report.table import print_table

    if os.environ.get("RANK", "0") == "0":
        print_table([result])
        print(f"run written to {out}")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str) -> Callable:
    def add(setup: Callable[[argparse.ArgumentParser], None]) -> Callable:
        def wrap(run: Callable[[argparse.Namespace], int]) -> Callable:
            COMMANDS[name] = (help, setup, run)
            return run
        return wrap
    return add


def add_options(p: argparse.ArgumentParser, specs: dict[str, Param]) -> None:
    """One flag per declared option (`n_mass` -> `--n-mass`; a list is a repeatable singular flag, `layers` ->
    `--layer`; a boolean is a switch away from its default, `--no-...` when it defaults on, and its help says
    so), its help and default from the declaration.
    Flags keep the strings given; the command's function checks them all at once (`params.checked`)."""
    for key, spec in specs.items():
        flag = "--" + key.replace("_", "-")
        text = f"{spec.help} ({spec.describe()}; default {spec.default!r})".replace("%", "%%")
        if spec.type is bool:
            p.add_argument(f"--no-{flag[2:]}" if spec.default else flag, dest=key, action="store_const",
                           const=not spec.default, default=argparse.SUPPRESS,
                           help=switch_help(spec).replace("%", "%%"))
        elif spec.type in (list, tuple):
            p.add_argument(flag.removesuffix("s"), dest=key, action="append", default=argparse.SUPPRESS, help=text,
                           metavar=key.removesuffix("s").upper())
        else:
            p.add_argument(flag, dest=key, default=argparse.SUPPRESS, help=text)


def switch_help(spec: Param) -> str:
    """The help of a boolean option's switch: what the option does, and that the switch turns it off (or on)."""
    return f"{spec.help}: {'on' if spec.default else 'off'} by default; this switch turns it {'off' if spec.default else 'on'}"


def given_options(args: argparse.Namespace, specs: dict[str, Param]) -> dict[str, Any]:
    """The declared options given on the command line (the others keep their declared defaults)."""
    return {key: getattr(args, key) for key in specs if hasattr(args, key)}
