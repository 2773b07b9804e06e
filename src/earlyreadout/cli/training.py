"""Commands that train or refit: train, compare, list, retrain, distill, search."""

from __future__ import annotations

import argparse
import sys

from earlyreadout.cli.base import (
    add_options,
    add_run_options,
    command,
    flag_values,
    given_options,
    report_run,
)
from earlyreadout.errors import UserError


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


def cmd_compare(args: argparse.Namespace) -> int:
    from earlyreadout.compare import compare

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    flags = {k: v for k, v in flag_values(args).items() if k not in ("train.seed", "out")}
    compare(methods, args.out, args.config, args.overrides, args.seeds, args.seed or 0, flags,
            feature_quality=args.feature_quality)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from earlyreadout.data import DATASETS
    from earlyreadout.methods import METHODS
    from earlyreadout.models import MODELS
    from earlyreadout.report.table import labels_of

    for title, registry, attr in (("methods", METHODS, "hparams"), ("datasets", DATASETS, "options"),
                                  ("models", MODELS, "options")):
        print(f"{title}:")
        for name in registry:
            labels = labels_of(name, {}) if registry is METHODS else None
            other = [f"method.{k}={c}: {labels_of(name, {k: c})}" for k, p in getattr(registry.get(name), attr).items()
                     if labels and p.choices for c in p.choices if labels_of(name, {k: c}) != labels]
            print(f"  {name:<20} group labels: {labels}" + (f"  ({'; '.join(other)})" if other else "")
                  if labels else f"  {name}")
            if args.verbose:
                for key, p in getattr(registry.get(name), attr).items():
                    print(f"      {key} = {p.default!r}  ({p.describe()}) {p.help}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--out", help="run directory (default runs/latest)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")


def _compare_args(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--methods", default="erm", help="comma-separated methods and families to compare: `all` (every "
                   "method but the distillers, which need a teacher), `label-free` (no group labels), "
                   "`group-labels` (train or val group labels); `ceiling` adds ERM on group-balanced train "
                   "(generated benchmarks), the best a method can hope for; `A+B` trains A, then refits its "
                   "selected model's last layer with B (e.g. readout-reweight+readout-dfr)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per method")
    p.add_argument("--out", default="runs/compare", help="folder for the runs and the summary")
    p.add_argument("--feature-quality", action="store_true", help="also refit DFR (val group labels) on each "
                   "trained run's penultimate features and show its test worst-group accuracy beside the method's own")


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
    if cfg.method.settings["teacher"] is None:
        raise UserError("distill needs a teacher: pass --teacher RUN_DIR (or set method.teacher in the config)")
    RunDir(cfg.method.settings["teacher"]).require_finished("teacher")
    report_run(train(cfg), cfg.out)
    return 0


command("distill", "train a student from a frozen teacher run: kd, dedier (early-readout weights) or jtt-kd")(
    _distill_args)(cmd_distill)


def _search_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.search import SEARCH_OPTIONS

    add_run_options(p)
    p.add_argument("--out", help="search directory: the study database, trials/<n>/, best/, summary.json")
    p.add_argument("--storage", help="Optuna storage shared by workers: a URL, e.g. postgresql://user:pw@host/db, "
                                     "or journal:PATH, a file on a disk every worker mounts (default: sqlite in --out)")
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


IMPORT_FLAGS = {"data": "data.name", "data_root": "data.root", "image_size": "data.image_size",
                "channels": "data.channels", "device": "train.device"}


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the model's architecture: FILE.py:CALLABLE or package.module:CALLABLE "
                   "(your own class or function; given n_classes where it takes it, else model.kwargs={...}), a "
                   "torchvision classification model name (resnet50, convnext_tiny, ...), or a built-in model")
    p.add_argument("--checkpoint", required=True, help="its trained weights: a state dict saved with torch.save "
                   "(plain, inside {'state_dict': ...} or {'model': ...}, DataParallel and Lightning prefixes accepted)")
    p.add_argument("--data", default="csv", help="dataset (default csv: a metadata CSV of your images or texts)")
    p.add_argument("--data-root", help="the metadata CSV, or the folder holding it (data.file names it)")
    p.add_argument("--out", required=True, help="the run directory to write")
    p.add_argument("--image-size", type=int, help="side of the square input the model was trained at (data.image_size)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="input channels the model takes: 3 (RGB) or 1 "
                   "(grayscale)")
    p.add_argument("--mean", help="per-channel mean of the training normalisation, comma-separated, or none "
                   "(default: ImageNet's)")
    p.add_argument("--std", help="per-channel std of the training normalisation, comma-separated, or none "
                   "(default: ImageNet's)")
    p.add_argument("--pickled-module", action="store_true", help="accept a checkpoint holding a whole pickled "
                   "nn.Module (loading it can run code: only for files you trust)")
    p.add_argument("--no-diagnose", dest="diagnose", action="store_false", help="skip the early-readout diagnosis "
                   "that otherwise runs on the imported model")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="data.*, model.* or train.* settings, e.g. "
                   "data.label_column=label 'model.kwargs={depth: 18}'")


def normalisation(text: str | None) -> list[float] | None:
    """A --mean / --std value: comma-separated numbers, or none for no normalisation."""
    if text is None or text.strip().lower() in ("none", "null"):
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--mean / --std take comma-separated numbers or none (e.g. 0.5,0.5,0.5); got {text!r}") from None


def cmd_import(args: argparse.Namespace) -> int:
    from earlyreadout.explain.diagnose import diagnose
    from earlyreadout.train.imported import import_model

    values = {key: getattr(args, name) for name, key in IMPORT_FLAGS.items() if getattr(args, name) is not None}
    values.update({f"data.{name}": normalisation(getattr(args, name)) for name in ("mean", "std")
                   if getattr(args, name) is not None})
    values.pop("data.name", None)
    result = import_model(args.model, args.checkpoint, args.out, args.data, values, args.overrides, args.pickled_module)
    report_run(result, args.out)
    if args.diagnose:  # its verdict line says what to run next
        diagnose(args.out)
    else:
        print(f"next: earlyreadout diagnose --run {args.out}, or refit its last layer: earlyreadout retrain --run "
              f"{args.out} --method readout-dfr --out {args.out.rstrip('/')}-fixed")
    return 0


command("import", "make a run directory from a model trained elsewhere (its code and checkpoint), evaluated and "
        "diagnosed, for retrain, diagnose, gradcam and report")(_import_args)(cmd_import)
