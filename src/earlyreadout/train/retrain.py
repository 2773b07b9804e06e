"""Last-layer retraining of a finished run: its selected model's classifier refitted by a last-layer method
(dfr, afr, self, readout-dfr) into a new run directory, in seconds; the source run is only read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from earlyreadout import distributed
from earlyreadout.config import apply_overrides, build_config
from earlyreadout.errors import UserError
from earlyreadout.io import load_checkpoint, save_checkpoint
from earlyreadout.methods import METHODS
from earlyreadout.methods.refit.last_layer import LastLayerRetraining
from earlyreadout.models.layers import unwrap
from earlyreadout.train.engine import build_run, describe_run, finish_run, refit_after_selection, scorer
from earlyreadout.train.runs import UNKNOWN_LABELS, RunDir, run_result, stored_config


def last_layer_methods() -> list[str]:
    return [name for name in METHODS.names() if issubclass(METHODS.get(name), LastLayerRetraining)]


def refit_settings(source_hp: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The settings of last-layer `method` refitting a run trained with method settings `source_hp`: the ones
    they share (the ERM stage's) from the source, the rest at `method`'s defaults."""
    params = METHODS.get(method).hparams
    return {**{k: p.default for k, p in params.items()}, **{k: v for k, v in source_hp.items() if k in params}}


def method_settings(overrides: list[str]) -> dict[str, Any]:
    """The method settings of `method.KEY=VALUE` overrides; any other section is refused (the source run fixes
    the data, model and training)."""
    given = apply_overrides({}, overrides)
    if set(given) - {"method"}:
        raise UserError(f"retrain takes method.KEY=VALUE settings only (the source run fixes the rest); got "
                        f"{', '.join(sorted(set(given) - {'method'}))}")
    return given.get("method", {})


def retrain(source: str | Path, method: str, out: str | Path, settings: dict[str, Any] | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Refit the last layer of `source`'s selected model with `method` (and its `settings`, key -> value)
    into run directory `out`; return its metrics.json. Embeddings are cached in the source run."""
    src = RunDir(source)
    src.require_finished("source run")
    if method not in last_layer_methods():
        raise UserError(f"{method!r} is not a last-layer method; choose one of {', '.join(last_layer_methods())}")
    source_cfg = stored_config(source)
    raw = source_cfg.to_dict()
    raw["method"] = {**refit_settings(raw["method"], method), **(settings or {}), "name": method}
    raw["out"] = str(out)
    cfg = build_config(raw)
    run = RunDir(out)
    device = distributed.resolve_device(cfg.train.device)
    method_obj, splits, _ = build_run(cfg, device, distributed.DistInfo(0, 1, 0))
    method_obj.ctx.cache_dir = src.embeddings
    selected = load_checkpoint(src.best, map_location=device, advice=f"train {str(src.path)!r} again")
    unwrap(method_obj.network).load_state_dict(selected)
    if source_cfg.method.name == method:  # what the source's training kept for its retraining (SELF's early model)
        last = load_checkpoint(src.last, advice=f"train {str(src.path)!r} again")
        method_obj.load_extra_state(last["method_state"].get("extra", {}))
    problem = method_obj.source_problem(source_cfg.method.name)
    if problem:
        raise UserError(f"cannot retrain {str(src.path)!r} with {method}: {problem}")
    run.prepare(False, cfg)
    info = {**refit_after_selection(method_obj), "source_run": str(src.path.resolve())}
    log(f"{method}: last layer refitted in {info['time_s']:.1f} s")
    source_metrics = src.read_metrics()
    score = scorer(method_obj, cfg, device, distributed.DistInfo(0, 1, 0), progress=False)
    labels = type(method_obj).labels_used(cfg.method.settings)
    if source_metrics.get("labels_used") == UNKNOWN_LABELS:  # a model trained elsewhere may have read any
        labels = UNKNOWN_LABELS
    result = run_result(cfg, labels, source_metrics.get("selected_by"),
                        source_metrics.get("best_epoch"), source_metrics.get("train_time_s"), score(splits["val"]),
                        score(splits["test"]), epochs=source_metrics.get("epochs", cfg.train.epochs),
                        last_layer=info)
    describe_run(run, cfg, method_obj.ctx.layers)
    save_checkpoint(selected, run.best)
    save_checkpoint(unwrap(method_obj.network).state_dict(), run.retrained)
    finish_run(run, result)
    return result
