"""Explain trained runs on one split: Grad-CAM grids (images) or token attributions (text) per group,
side by side for several runs, with the fraction of the explanation on the core / spurious region."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import torch
from torch import nn

from earlyreadout.config import RunConfig
from earlyreadout.data import DATASETS
from earlyreadout.data.base import GroupedDataset
from earlyreadout.distributed import DEVICE_OPTION, resolve_device
from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.explain.figures import overlay_grid, token_html
from earlyreadout.explain.gradcam import gradcam, region_mass, token_attributions, token_mass
from earlyreadout.io import write_json, write_text
from earlyreadout.models import model_layers
from earlyreadout.params import Param, checked
from earlyreadout.train.runs import check_layers, load_trained


@dataclass
class Explanation:
    """What `explain_runs` computed: a JSON-ready summary and one figure per group (PNG bytes or HTML)."""

    kind: str  # "image" or "text"
    summary: dict[str, Any]
    figures: dict[str, bytes | str] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """Lines a reader needs next to the figures (why some Grad-CAM maps are blank)."""
        return self.summary.get("notes", [])


def blank_notes(runs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run whose shown Grad-CAM maps include blank ones (all zero): how many, where, and why."""
    notes = []
    for r in runs:
        blank = {g: s["blank"] for g, s in r["groups"].items() if s.get("blank")}
        if blank:
            shown = sum(s["shown"] for s in r["groups"].values())
            where = "; ".join(f"{g}: {k} of {r['groups'][g]['shown']}" for g, k in blank.items())
            notes.append(f"{r['label']}: {sum(blank.values())} of {shown} Grad-CAM maps shown are blank ({where}): "
                         f"Grad-CAM keeps only what raises the predicted class's logit, and no position of layer "
                         f"{r['layer']!r} did (its gradient there is zero, or every position lowers the logit); "
                         "another --layer may show evidence")
    return notes


GRADCAM_OPTIONS: dict[str, Param] = {
    "layer": Param(None, "module path of the explained layer (default: the model's last stage; the embedding "
                   "for text)", nullable=True, kind=str),
    "n": Param(16, "examples shown per group", low=1),
    "n_mass": Param(256, "examples per group in the core / spurious mass", low=1),
    "split": Param("test", "the split explained", choices=("train", "val", "test")),
    "groups": Param(None, "a group name or index (repeatable; default: all)", nullable=True, kind=list),
    "device": DEVICE_OPTION,
    "batch_size": Param(64, "examples per forward and backward pass", low=1, affects_results=False),
}


def explained_layer(layer: str | None, model_name: str, model: nn.Module, modality: str) -> str:
    """The module path `layer` names (`stage:N` or a path); when none is given, the last stage for images and
    the embedding stage for text."""
    known = model_layers(model_name, model)
    if layer:
        return known.resolve(layer, "--layer")
    stages = known.stages
    if not stages:
        raise UserError(f"model {model_name!r} has no stages to explain by default; name one with --layer "
                        "(module paths, see the run's layers.json)")
    return stages[0] if modality == "text" else stages[-1]


def select_groups(dataset: GroupedDataset, wanted: Sequence[str | int] | None) -> list[int]:
    """Group indices from names or indices (all groups when `wanted` is empty)."""
    if not wanted:
        return list(range(dataset.n_groups))
    names = dataset.group_names
    chosen = []
    for w in map(str, wanted):
        if w.isdigit() and int(w) < len(names):
            chosen.append(int(w))
        elif w in names:
            chosen.append(names.index(w))
        else:
            raise UserError(f"no group {w!r} in {dataset.name}{did_you_mean(w, names)}; give a group index "
                            f"0..{len(names) - 1} or one of: {'; '.join(names)}")
    return chosen


def region_area(info: dict[str, Any], size: tuple[int, int]) -> dict[str, float]:
    """The mass a uniform map puts on the core / spurious region: the baseline to read the fractions against."""
    areas = {}
    for key in ("core", "spurious"):
        if f"{key}_region" in info:
            r0, r1, c0, c1 = info[f"{key}_region"]
            areas[f"{key}_mass"] = (min(r1, size[0]) - r0) * (min(c1, size[1]) - c0) / (size[0] * size[1])
    return areas


def run_labels(configs: Sequence[RunConfig], paths: Sequence[Path]) -> list[str]:
    """A short label per run: the method name, with the run folder's name when methods repeat."""
    methods = [c.method.name for c in configs]
    return [m if methods.count(m) == 1 else f"{m} ({p.name})" for m, p in zip(methods, paths)]


def _batched(fn: Any, model: nn.Module, x: torch.Tensor, batch: int, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    outs, logits = [], []
    for i in range(0, len(x), batch):
        o, lg = fn(model, x[i : i + batch], **kw)
        outs.append(o)
        logits.append(lg)
    return torch.cat(outs), torch.cat(logits)


def evaluation_data(cfg: RunConfig) -> tuple[str, dict[str, Any]]:
    """The dataset and the options that shape its val and test splits (train-only options left out)."""
    train_only = getattr(DATASETS.get(cfg.data.name), "train_only_options", ())
    return cfg.data.name, {k: v for k, v in cfg.data.settings.items() if k not in train_only}


def _load_all(runs: Sequence[str | Path], device: str) -> list[tuple[RunConfig, nn.Module, dict[str, GroupedDataset]]]:
    loaded = [load_trained(r, device) for r in runs]
    first = loaded[0][0]
    for (cfg, _, _), path in zip(loaded[1:], runs[1:]):
        if evaluation_data(cfg) != evaluation_data(first):
            raise UserError(f"{str(path)!r} was trained on different data ({cfg.data.name} {cfg.data.settings}) than "
                            f"{str(runs[0])!r} ({first.data.name} {first.data.settings}); compare runs on the same dataset and options")
    return loaded


def explain_runs(runs: Sequence[str | Path], labels: Sequence[str] | None = None, **options: Any) -> Explanation:
    """Explain the selected models of `runs` on the first `n` examples of each group of `split`.

    `options` are those of GRADCAM_OPTIONS (checked, all at once, before anything is loaded). The mass
    fractions average over the first `n_mass` examples of each group. All runs must share data. `labels`
    name the runs in figures (default: their method, with the folder when methods repeat).
    """
    opts = checked(GRADCAM_OPTIONS, options, "gradcam")
    layer, n, n_mass, split, batch_size = (opts[k] for k in ("layer", "n", "n_mass", "split", "batch_size"))
    device = str(resolve_device(opts["device"]))
    paths = [Path(r) for r in runs]
    for path in paths if layer else []:
        check_layers(path, [layer])
    loaded = _load_all(runs, device)
    splits = loaded[0][2]
    if split not in splits:
        raise UserError(f"no split {split!r}; choose one of: {', '.join(splits)}")
    data = splits[split]
    modality = data.info.get("modality", "image")
    labels = list(labels) if labels else run_labels([c for c, _, _ in loaded], paths)
    layers = [explained_layer(layer, c.model.name, m, modality) for c, m, _ in loaded]
    chosen = select_groups(data, opts["groups"])
    summary: dict[str, Any] = {"split": split, "dataset": data.name, "kind": modality, "runs": []}
    if modality != "text":
        summary["region_area"] = region_area(data.info, tuple(data.get_x(0).shape[-2:]))
    per_run: list[dict[str, Any]] = [{"run": str(p), "label": lab, "method": c.method.name, "layer": lay, "groups": {}}
                                     for p, lab, (c, _, _), lay in zip(paths, labels, loaded, layers)]
    figures: dict[str, bytes | str] = {}
    for gi in chosen:
        name = data.group_names[gi]
        idx = (data.g == gi).nonzero().squeeze(1)[: max(n, n_mass)]
        if len(idx) == 0:
            continue
        x = torch.stack([data.get_x(int(i)) for i in idx]).to(device)
        y = data.y[idx]
        if modality == "text":
            figures[name] = _explain_text(loaded, layers, labels, per_run, data, name, x, y, n, n_mass, batch_size)
        else:
            figures[name] = _explain_images(loaded, layers, labels, per_run, data, name, x, y, n, n_mass, batch_size)
    for r in per_run:
        for key in ("core_mass", "spurious_mass"):
            values = [g[key] for g in r["groups"].values() if g.get(key) is not None]
            if values:
                r[f"{key}_group_mean"] = mean(values)
    summary["runs"] = per_run
    summary["notes"] = blank_notes(per_run) if modality != "text" else []
    return Explanation(modality, summary, figures)


def _explain_images(loaded: list, layers: list[str], labels: list[str], per_run: list[dict[str, Any]],
                    data: GroupedDataset, name: str, x: torch.Tensor, y: torch.Tensor, n: int, n_mass: int,
                    batch_size: int) -> bytes:
    rows = []
    for (_, model, _), lay, label, record in zip(loaded, layers, labels, per_run):
        maps, logits = _batched(gradcam, model, x, batch_size, layer=lay)
        preds = logits.argmax(1).cpu()
        stats: dict[str, Any] = {"n": min(len(x), n_mass),
                                 "accuracy": float((preds[:n_mass] == y[:n_mass]).float().mean()),
                                 "shown": min(len(x), n), "blank": int((maps[:n].amax((1, 2)) == 0).sum())}
        for key, region in (("core_mass", "core_region"), ("spurious_mass", "spurious_region")):
            if region in data.info:
                values = region_mass(maps[:n_mass], tuple(data.info[region]))
                stats[key] = float(values.nanmean()) if not values.isnan().all() else None
        record["groups"][name] = stats
        rows.append((label, maps[:n].cpu(), preds[:n]))
    return overlay_grid(x[:n].cpu(), y[:n].tolist(), data.class_names, rows, title=f"{data.name} / {name}")


def _explain_text(loaded: list, layers: list[str], labels: list[str], per_run: list[dict[str, Any]],
                  data: GroupedDataset, name: str, ids: torch.Tensor, y: torch.Tensor, n: int, n_mass: int,
                  batch_size: int) -> str:
    vocab = data.info.get("vocabulary")
    if vocab is None:
        raise UserError(f"{data.name} has no vocabulary in its info, so its tokens cannot be shown")
    spurious = set(data.info.get("spurious_tokens", []))
    pad = data.info.get("pad_id")
    spurious_ids = torch.tensor([i for i, w in enumerate(vocab) if w in spurious], dtype=torch.long)
    mask = torch.isin(ids.cpu(), spurious_ids)
    tokens, attrs, captions = [], [], []
    results = []
    for (_, model, _), lay, record in zip(loaded, layers, per_run):
        attr, logits = _batched(token_attributions, model, ids, batch_size, layer=lay, pad_id=pad)
        attr, preds = attr.cpu(), logits.argmax(1).cpu()
        values = token_mass(attr[:n_mass], mask[:n_mass])
        record["groups"][name] = {
            "n": min(len(ids), n_mass), "accuracy": float((preds[:n_mass] == y[:n_mass]).float().mean()),
            "spurious_mass": float(values.nanmean()) if spurious and not values.isnan().all() else None}
        results.append((attr, preds))
    for i in range(min(n, len(ids))):
        keep = [j for j, t in enumerate(ids[i].tolist()) if t != pad]
        for label, (attr, preds) in zip(labels, results):
            tokens.append([vocab[int(ids[i, j])] for j in keep])
            attrs.append([float(attr[i, j]) for j in keep])
            verdict = "right" if preds[i] == y[i] else "wrong"
            captions.append(f"{label}: pred {data.class_names[int(preds[i])]} ({verdict})")
    return token_html(tokens, attrs, captions, spurious)


def slug(text: str) -> str:
    """A file-name-safe form of a group name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "group"


def write_explanation(explanation: Explanation, out: str | Path) -> list[Path]:
    """Write one PNG (images) or HTML page (text) per group and `gradcam.json` into `out`; return the paths."""
    out = Path(out)
    written = []
    for i, (name, figure) in enumerate(explanation.figures.items()):
        if isinstance(figure, bytes):
            path = out / f"group{i}-{slug(name)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(figure)
        else:
            path = out / f"group{i}-{slug(name)}.html"
            title = html.escape(name)
            write_text(f"<!doctype html><meta charset='utf-8'><title>{title}</title>"
                       f"<body style='font-family:system-ui,sans-serif'><h2>{title}</h2>{figure}</body>\n", path)
        written.append(path)
    write_json(explanation.summary, out / "gradcam.json")
    return written + [out / "gradcam.json"]
