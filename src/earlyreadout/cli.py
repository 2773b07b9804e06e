"""The `earlyreadout` command: argument parsing -> config -> recipe; user errors -> one line, exit 2."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from earlyreadout.errors import UserError
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
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data-root", help="folder holding the dataset release (real datasets: waterbirds, celeba, ...)")
    p.add_argument("--weights", help="local file of pretrained weights for the model (resnet, timm)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any config key, e.g. method.forget_every=5")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """{config key: typed value} of the flags given (explicit key=value overrides are applied after, and win)."""
    return {key: getattr(args, name) for name, key in TRAIN_FLAGS.items() if getattr(args, name, None) is not None}


def cmd_train(args: argparse.Namespace) -> int:
    from earlyreadout.config import build_config, layered, load_config, read_yaml
    from earlyreadout.train.engine import train
    from earlyreadout.train.runs import stored_config

    if args.resume:  # the config to run: the stored one (or -c FILE) with the flags; train refuses changes
        if not args.out:
            raise UserError("--resume needs --out pointing at the run to continue")
        raw = read_yaml(args.config) if args.config else stored_config(args.out).to_dict()
        cfg = build_config(layered(raw, flag_values(args), args.overrides))
    else:
        cfg = load_config(args.config, args.overrides, flag_values(args))
    report_run(train(cfg, resume=args.resume), cfg.out)
    return 0


def report_run(result: dict, out: str) -> None:
    """Print a finished run's results table; under torchrun only the first process prints."""
    from earlyreadout.report.table import print_table

    if os.environ.get("RANK", "0") == "0":
        print_table([result])
        print(f"run written to {out}")


def cmd_compare(args: argparse.Namespace) -> int:
    from earlyreadout.compare import compare

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    flags = {k: v for k, v in flag_values(args).items() if k not in ("train.seed", "out")}
    compare(methods, args.out, args.config, args.overrides, args.seeds, args.seed or 0, flags)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from earlyreadout.data import DATASETS
    from earlyreadout.methods import METHODS
    from earlyreadout.models import MODELS

    for title, registry, attr in (("methods", METHODS, "hparams"), ("datasets", DATASETS, "options"),
                                  ("models", MODELS, "options")):
        print(f"{title}:")
        for name in registry:
            print(f"  {name}")
            if args.verbose:
                for key, p in getattr(registry.get(name), attr).items():
                    print(f"      {key} = {p.default!r}  ({p.describe()}) {p.help}")
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str) -> Callable:
    def add(setup: Callable[[argparse.ArgumentParser], None]) -> Callable:
        def wrap(run: Callable[[argparse.Namespace], int]) -> Callable:
            COMMANDS[name] = (help, setup, run)
            return run
        return wrap
    return add


def _train_args(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--out", help="run directory (default runs/latest)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")


def _compare_args(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--methods", default="erm", help="comma-separated methods to compare; `ceiling` adds ERM "
                   "on group-balanced train (generated benchmarks), the best a method can hope for")
    p.add_argument("--seeds", type=int, default=1, help="seeds per method")
    p.add_argument("--out", default="runs/compare", help="folder for the runs and the summary")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="show every parameter")


command("train", "train one method on one dataset")(_train_args)(cmd_train)
command("compare", "train several methods (and seeds) on one dataset; print one results table")(
    _compare_args)(cmd_compare)
command("list", "list methods, datasets and models")(_list_args)(cmd_list)


def _retrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", dest="run_dir", required=True, help="a finished run whose selected model's last layer is refitted")
    p.add_argument("--method", default="readout-dfr", help="last-layer method: dfr, afr, self or readout-dfr")
    p.add_argument("--out", required=True, help="run directory for the retrained model")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="method settings, e.g. method.c_grid=celeba")


def cmd_retrain(args: argparse.Namespace) -> int:
    from earlyreadout.train.retrain import method_settings, retrain

    report_run(retrain(args.run_dir, args.method, args.out, method_settings(args.overrides)), args.out)
    return 0


command("retrain", "refit the last layer of a finished run (DFR, AFR, SELF, readout-dfr) into a new run")(
    _retrain_args)(cmd_retrain)


def _distill_args(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--teacher", help="run directory of the trained teacher (frozen; any model)")
    p.add_argument("--student", help="student model name (same as --model; options as model.KEY=VALUE)")
    p.add_argument("--out", help="run directory (default runs/latest)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")


def cmd_distill(args: argparse.Namespace) -> int:
    """`train` with a teacher: method (default dedier), data (default the teacher's) and student from flags."""
    from earlyreadout.config import build_config, layered, read_yaml
    from earlyreadout.methods import METHODS
    from earlyreadout.train.engine import train
    from earlyreadout.train.runs import RunDir, saved_config

    if args.resume:
        return cmd_train(args)
    raw = read_yaml(args.config) if args.config else {}
    if args.teacher:
        RunDir(args.teacher).require_finished("teacher")
        if "data" not in raw and args.data is None:
            raw["data"] = saved_config(args.teacher)["data"]
    flags = flag_values(args)
    if "method" not in raw and args.method is None:
        flags = {"method.name": "dedier", **flags}
    raw = layered(raw, flags, args.overrides)
    method = raw["method"] if isinstance(raw["method"], str) else raw["method"].get("name")
    distillers = [m for m in METHODS if "teacher" in METHODS.get(m).hparams]
    if method in METHODS and method not in distillers:
        raise UserError(f"distill trains a student with a teacher: use --method {', '.join(distillers)} "
                        f"(got {method!r}; `earlyreadout train` trains without one)")
    cfg = build_config(raw)
    if cfg.method_hp["teacher"] is None:
        raise UserError("distill needs a teacher: pass --teacher RUN_DIR (or set method.teacher in the config)")
    RunDir(cfg.method_hp["teacher"]).require_finished("teacher")
    report_run(train(cfg), cfg.out)
    return 0


command("distill", "train a student from a frozen teacher run: kd, dedier (early-readout weights) or jtt-kd")(
    _distill_args)(cmd_distill)


def add_options(p: argparse.ArgumentParser, specs: dict[str, Param]) -> None:
    """One flag per declared option (`n_mass` -> `--n-mass`; a list is a repeatable singular flag, `layers` ->
    `--layer`; a boolean that defaults on is a `--no-...` switch), its help and default from the declaration.
    Flags keep the strings given; the command's function checks them all at once (`params.checked`)."""
    for key, spec in specs.items():
        flag = "--" + key.replace("_", "-")
        text = f"{spec.help} ({spec.describe()}; default {spec.default!r})".replace("%", "%%")
        if spec.type is bool:
            p.add_argument(f"--no-{flag[2:]}" if spec.default else flag, dest=key, action="store_const",
                           const=not spec.default, default=argparse.SUPPRESS,
                           help=f"{spec.help} ({'on' if spec.default else 'off'} unless given)".replace("%", "%%"))
        elif spec.type in (list, tuple):
            p.add_argument(flag.removesuffix("s"), dest=key, action="append", default=argparse.SUPPRESS, help=text,
                           metavar=key.removesuffix("s").upper())
        else:
            p.add_argument(flag, dest=key, default=argparse.SUPPRESS, help=text)


def given_options(args: argparse.Namespace, specs: dict[str, Param]) -> dict[str, Any]:
    """The declared options given on the command line (the others keep their declared defaults)."""
    return {key: getattr(args, key) for key in specs if hasattr(args, key)}


def _gradcam_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.explain.runs import GRADCAM_OPTIONS

    p.add_argument("--run", dest="run_dir", required=True, help="a finished run directory")
    p.add_argument("--vs", help="a second run on the same data, shown side by side (e.g. ERM vs sieve)")
    p.add_argument("--out", help="output folder (default: <run>/gradcam, or <run>/gradcam-vs with --vs)")
    add_options(p, GRADCAM_OPTIONS)


def cmd_gradcam(args: argparse.Namespace) -> int:
    from earlyreadout.explain.runs import GRADCAM_OPTIONS, explain_runs, write_explanation

    runs = [args.run_dir] + ([args.vs] if args.vs else [])
    explanation = explain_runs(runs, **given_options(args, GRADCAM_OPTIONS))
    out = args.out or f"{args.run_dir.rstrip('/')}/{'gradcam-vs' if args.vs else 'gradcam'}"
    for path in write_explanation(explanation, out):
        print(path)
    return 0


command("gradcam", "show what trained models look at: Grad-CAM per group (token attributions for text)")(
    _gradcam_args)(cmd_gradcam)


def _report_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.report.page import REPORT_OPTIONS

    p.add_argument("runs", nargs="+", help="run directories, or folders of runs (e.g. a compare --out)")
    p.add_argument("--out", default="report.html", help="the HTML file to write")
    add_options(p, REPORT_OPTIONS)


def cmd_report(args: argparse.Namespace) -> int:
    from earlyreadout.report.page import REPORT_OPTIONS, write_report

    path = write_report(args.runs, args.out, **given_options(args, REPORT_OPTIONS))
    print(f"report written to {path}")
    return 0


command("report", "one self-contained HTML page comparing runs: metrics, curves, diagnosis, Grad-CAM, configs")(
    _report_args)(cmd_report)


def _diagnose_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.explain.diagnose import DIAGNOSE_OPTIONS

    p.add_argument("--run", dest="run_dir", required=True, help="a finished run directory")
    p.add_argument("--out", help="output folder (default: the run directory)")
    add_options(p, DIAGNOSE_OPTIONS)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from earlyreadout.explain.diagnose import DIAGNOSE_OPTIONS, diagnose

    diagnose(args.run_dir, args.out, **given_options(args, DIAGNOSE_OPTIONS))
    return 0


command("diagnose", "train early readouts on a run's frozen layers; score how well they flag minority groups")(
    _diagnose_args)(cmd_diagnose)


def _search_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.search import SEARCH_OPTIONS

    add_run_options(p)
    p.add_argument("--out", help="search directory: the study database, trials/<n>/, best/, summary.json")
    p.add_argument("--storage", help="Optuna storage URL shared by workers, e.g. postgresql://user:pw@host/db "
                                     "(default: sqlite in --out)")
    p.add_argument("--study", help="study name (default: the name of the --out folder)")
    add_options(p, {k: spec for k, spec in SEARCH_OPTIONS.items() if k != "space"})  # space: in the config


def cmd_search(args: argparse.Namespace) -> int:
    from earlyreadout.search import SEARCH_OPTIONS, search

    options = given_options(args, SEARCH_OPTIONS)
    try:
        summary = search(args.config, args.overrides, args.storage, args.study, options, values=flag_values(args))
    except KeyboardInterrupt:
        print("interrupted; finished trials are stored, run the same command again to continue", file=sys.stderr)
        return 130
    if summary is not None:
        for split in ("val", "test"):
            m = summary[split]["worst_group_accuracy"]
            print(f"best trial {summary['best_trial']} {summary['params']}: {split} worst-group "
                  f"{m['mean']:.3f} +- {m['std']:.3f} over seeds {summary['seeds']}")
    return 0


command("search", "tune a method's hyperparameters on validation with Optuna (many workers may share a study)")(
    _search_args)(cmd_search)


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


def main(argv: list[str] | None = None) -> int:
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
