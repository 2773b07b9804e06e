"""One self-contained HTML page comparing runs: metrics (seeds as mean ± std), training curves, readout
diagnosis, Grad-CAM grids and the resolved configs. Images are inlined PNGs and the CSS is inline, so the
file works offline and can be mailed around as is.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from earlyreadout.config import result_settings
from earlyreadout.distributed import DEVICE_OPTION
from earlyreadout.errors import UserError
from earlyreadout.explain.runs import explain_runs
from earlyreadout.io import read_json_file, write_text
from earlyreadout.params import Param, checked
from earlyreadout.report.html_table import cell, html_table
from earlyreadout.report.plots import curves_png, measures_caption, measures_png
from earlyreadout.report.table import (
    FEATURES,
    LABEL_ORDER,
    LABEL_WORDS,
    labels_cell,
    labels_of,
    per_class,
    times_vs_erm,
)
from earlyreadout.train.runs import RunDir, saved_config

HEADLINE = (("worst_group_accuracy", "worst-group"), ("adjusted_accuracy", "adjusted"),
            ("average_accuracy", "average"), ("ece", "ECE"))

REPORT_OPTIONS: dict[str, Param] = {
    "title": Param("earlyreadout report", "the page's title"),
    "gradcam": Param(True, "compute Grad-CAM / token attributions for the report (when off, it shows the grids "
                     "made earlier with `earlyreadout gradcam`)"),
    "n": Param(8, "examples per group in the Grad-CAM grids", low=1),
    "n_mass": Param(128, "examples per group in the core / spurious mass", low=1),
    "device": DEVICE_OPTION,
}

CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);background:#fff;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 28px 60px}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:20px;margin:38px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:16px 0 6px}
p.meta,.note{color:var(--muted);font-size:13px;margin:4px 0}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13.5px;font-variant-numeric:tabular-nums}
th,td{padding:5px 11px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:var(--soft);font-weight:600;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
tr:hover td{background:#fbfcfd}
td.best{font-weight:700;color:var(--accent)}
.scroll{overflow-x:auto}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;padding:8px;border:1px solid var(--line);border-radius:6px;background:#fff;max-width:100%}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:12.5px;color:var(--muted);margin-top:4px}
details{margin:6px 0;border:1px solid var(--line);border-radius:6px;padding:6px 10px;background:var(--soft)}
summary{cursor:pointer;font-weight:600;font-size:13.5px}
pre{font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-x:auto;margin:8px 0}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.tokens{font-size:13.5px}
"""


@dataclass
class Run:
    """What a run directory holds that the report shows."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    log: list[dict[str, Any]]
    feature_quality: dict[str, Any] | None = None  # DFR (val groups) on its features (train/feature_quality.py)

    @property
    def method(self) -> str:
        """The method its metrics name (an imported run's is `imported`), else its config's."""
        return (self.metrics or {}).get("method") or self.config["method"]["name"]

    @property
    def dataset(self) -> str:
        return self.config["data"]["name"]

    @property
    def labels(self) -> str:
        """The group labels the run's method read (train, val or none), as its metrics or its config say."""
        if self.metrics and "labels_used" in self.metrics:
            return self.metrics["labels_used"]
        return labels_of(self.method, {k: v for k, v in self.config["method"].items() if k != "name"})


def read_run(path: Path) -> Run:
    """A run directory's config, metrics (None while unfinished) and per-epoch log."""
    run = RunDir(path)
    metrics = run.read_metrics() if run.metrics.exists() else None
    return Run(path, saved_config(path), metrics, run.read_log(), run.read_feature_quality())


def find_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Runs named directly, or every run below a folder (e.g. a `compare` output), in a stable order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if RunDir(p).config.is_file():
            found.append(p)
        elif p.is_dir():
            below = sorted(c.parent for c in p.rglob(RunDir.CONFIG))
            if not below:
                raise UserError(f"{str(p)!r} holds no run directories (no config.yaml below it)")
            found.extend(below)
        else:
            raise UserError(f"{str(p)!r} is not a run directory or a folder of runs")
    return [read_run(p) for p in dict.fromkeys(found)]


def setting_key(config: dict[str, Any]) -> str:
    """The config without what varies between seeds of one setting: the seed, the output folder and every
    setting declared not to affect results (device, workers...)."""
    settings = {k: v for k, v in result_settings(config).items() if k != "train.seed"}
    return json.dumps(settings, sort_keys=True, default=str)


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs of one setting (same config up to the seed) under one label, in order of first appearance."""
    settings: dict[str, list[Run]] = {}
    for run in runs:
        settings.setdefault(setting_key(run.config), []).append(run)
    methods = [rs[0].method for rs in settings.values()]
    labelled = {}
    for rs in settings.values():
        label = rs[0].method
        if methods.count(label) > 1:
            path = rs[0].path
            if path.name.startswith("seed"):  # compare's layout <out>/<label>/seed<k> names the setting
                label = path.parent.name
            else:
                label = f"{label} ({path.parent.name if len(rs) > 1 else path.name})"
        labelled[label] = rs
    return labelled


def metrics_table(settings: dict[str, list[Run]]) -> str:
    """Test metrics per setting (mean ± std over seeds), then accuracy per group with methods side by side."""
    finished = {label: [r for r in rs if r.metrics] for label, rs in settings.items()}
    finished = {label: rs for label, rs in finished.items() if rs}
    unfinished = [str(r.path) for rs in settings.values() for r in rs if not r.metrics]
    pending = (f'<p class="note">Not finished yet (no metrics.json), left out: {html.escape(", ".join(unfinished))}; '
               "finish a run with <code>earlyreadout train --resume --out RUN</code>.</p>") if unfinished else ""
    if not finished:
        return pending
    # grouped as `compare --methods` families: no group labels, then val's, then train's
    finished = dict(sorted(finished.items(), key=lambda item: LABEL_ORDER.index(LABEL_WORDS[item[1][0].labels])))
    first = next(iter(finished.values()))[0].metrics
    relative = times_vs_erm([{**r.metrics, "method": label} for label, rs in finished.items() for r in rs])
    features = any(r.feature_quality for rs in finished.values() for r in rs)
    header = (["method", "runs"] + [f"{t} (%)" for _, t in HEADLINE] + ([f"{FEATURES} (%)"] if features else [])
              + ["labels"] + (["time vs ERM"] if relative else []))
    rows = [[(label, None), (str(len(rs)), None)] + [cell([r.metrics["test"].get(k) for r in rs]) for k, _ in HEADLINE]
            + ([cell([(r.feature_quality or {}).get("test_worst_group") for r in rs])] if features else [])
            + [(labels_cell({**rs[0].metrics, "labels_used": rs[0].labels}), None)]
            + ([(f"{relative[label]:.2f}x", None)] if relative else [])
            for label, rs in finished.items()]
    better = ([None, None] + ["min" if k == "ece" else "max" for k, _ in HEADLINE] + (["max"] if features else [])
              + [None] * (len(header) - 2 - len(HEADLINE) - features))
    note = (f'<p class="note">Test split; checkpoint selected by {html.escape(str(first.get("selected_by")))}; '
            "mean ± std over seeds; the best value is highlighted. Methods are grouped by the group labels they "
            "read (none, val groups, train groups); time: training time (with any refit) relative to ERM."
            + (" The test split has no attribute labels: worst-group is worst-class accuracy."
               if per_class(first["test"]) else "")
            + (f" {FEATURES}: test worst-group accuracy of DFR (val group labels) refitted on the selected model's "
               "penultimate features, the feature quality of Kirichenko et al. 2022." if features else "") + "</p>")
    groups = first["test"]["groups"]
    per_group = [[(g["name"], None), (str(g["n"]), None)]
                 + [cell([_group_accuracy(r.metrics["test"], g["name"]) for r in rs]) for rs in finished.values()]
                 for g in groups]
    return (pending + note + html_table(header, rows, better) + "<h4>Test accuracy per group (%)</h4>"
            + html_table(["group", "n"] + list(finished), per_group, [], across_rows=True))


def _group_accuracy(split_metrics: dict[str, Any], name: str) -> float | None:
    return next((g["accuracy"] for g in split_metrics["groups"] if g["name"] == name), None)


def image_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure(png: bytes, caption: str) -> str:
    return f"<figure>{image_tag(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def curves_section(settings: dict[str, list[Run]]) -> str:
    figs = [figure(png, f"{label}: per-group val accuracy by epoch")
            for label, rs in settings.items() if (png := curves_png(label, [r.log for r in rs])) is not None]
    figs += [figure(png, f"{label}: per-epoch measures ({measures_caption([r.log for r in rs])})")
             for label, rs in settings.items() if (png := measures_png(label, [r.log for r in rs])) is not None]
    return f'<div class="figs">{"".join(figs)}</div>' if figs else '<p class="note">No training logs.</p>'


def diagnosis_section(runs: Sequence[Run]) -> str:
    """Per run with a diagnosis: flagging quality of each layer's readout, and the diagnosis plots."""
    parts = []
    for run in runs:
        pngs = sorted(run.path.glob("diagnosis*.png")) + sorted((run.path / "diagnosis").glob("*.png"))
        summary_path = next((p for p in (run.path / "diagnosis.json", run.path / "diagnosis" / "diagnosis.json")
                             if p.is_file()), None)
        if not pngs and summary_path is None:
            continue
        parts.append(f"<h3>{html.escape(run.method)} <code>{html.escape(str(run.path))}</code></h3>")
        if summary_path is not None:
            parts.append(_diagnosis_table(read_json_file(summary_path, "diagnosis", "run `earlyreadout diagnose "
                                                         f"--run {run.path}` again")))
        parts.append('<div class="figs">' + "".join(figure(p.read_bytes(), p.stem.replace("_", " "))
                                                    for p in pngs) + "</div>")
    return "".join(parts)


def _diagnosis_table(summary: dict[str, Any]) -> str:
    layers = summary.get("layers", {})
    rows = []
    for layer, entry in layers.items():
        flag = entry.get("flagging") or {}
        train = (entry.get("splits") or {}).get("train") or {}
        evidence = entry.get("evidence") or {}
        rows.append([(layer, None), cell([train.get("average_accuracy")]), cell([evidence.get("error_share")]),
                     cell([evidence.get("confidence_ratio")], 1.0, 2),
                     cell([flag.get("auc")], 1.0, 3), cell([flag.get("average_precision")], 1.0, 3)])
    if not rows:
        return ""
    minority = ", ".join(summary.get("minority_groups", [])) or "none"
    note = (f'<p class="note">Readouts on frozen layers; confident errors flag the minority training groups '
            f"({html.escape(minority)}; AUC and AP need train attribute labels). Without them: the share of "
            "training instances each readout gets wrong, and how sure it is there relative to where it is right "
            "(median margin ratio; near 1 with a small share wrong is the shortcut pattern).</p>")
    decided = summary.get("verdict")
    line = f'<p><b>Verdict</b>: {html.escape(decided["line"])}</p>' if decided else ""
    return line + note + html_table(["layer", "train readout accuracy (%)", "wrong on train (%)",
                                     "margin ratio wrong / right", "minority AUC", "minority AP"], rows,
                                    [None, None, None, None, "max", "max"])


def gradcam_section(settings: dict[str, list[Run]], n: int, n_mass: int, device: str) -> str:
    """Grad-CAM grids per group (token attributions for text) of each setting's first run, side by side,
    and the share of the explanation on the core / spurious region."""
    labels = list(settings)
    reps = [rs[0].path for rs in settings.values()]
    try:
        explanation = explain_runs(reps, n=n, n_mass=n_mass, device=device, labels=labels)
    except UserError as e:
        return f'<p class="note">No explanation: {html.escape(str(e))}</p>'
    runs = explanation.summary["runs"]
    groups = list(runs[0]["groups"]) if runs else []
    parts = [(f'<p class="note">First run of each method, {html.escape(explanation.summary["split"])} split, '
             f'layer {html.escape(", ".join(dict.fromkeys(r["layer"] for r in runs)))}.</p>')]
    parts += [f'<p class="note">{html.escape(note)}.</p>' for note in explanation.notes]
    for key, title in (("core_mass", "on the core region"), ("spurious_mass", "on the spurious region")):
        if any(g.get(key) is not None for r in runs for g in r["groups"].values()):
            rows = [[(r["label"], None)] + [cell([r["groups"][g].get(key)]) for g in groups]
                    + [cell([r.get(f"{key}_group_mean")])] for r in runs]
            what = "Grad-CAM mass" if explanation.kind == "image" else "share of |gradient x input|"
            parts.append(f"<h4>{what} {title} (%)</h4>")
            area = explanation.summary.get("region_area", {}).get(key)
            if area is not None:
                parts.append(f'<p class="note">A uniform map would give {100 * area:.1f}%.</p>')
            rule = "max" if key == "core_mass" else "min"
            parts.append(html_table(["method"] + groups + ["mean over groups"], rows, [None] + [rule] * (len(groups) + 1)))
    for name, fig in explanation.figures.items():
        if isinstance(fig, bytes):
            parts.append(f'<div class="figs">{figure(fig, f"Grad-CAM, group {name}")}</div>')
        else:
            parts.append(f'<h4>{html.escape(name)}</h4><div class="tokens">{fig}</div>')
    return "".join(parts)


def existing_gradcam(runs: Sequence[Run]) -> str:
    """Grids a user already made with `earlyreadout gradcam` (shown when the report does not make its own)."""
    pngs = [p for run in runs for p in sorted(run.path.glob("gradcam*/*.png"))]
    return '<div class="figs">' + "".join(figure(p.read_bytes(), str(p)) for p in pngs) + "</div>" if pngs else ""


def configs_section(runs: Sequence[Run]) -> str:
    parts = []
    for run in runs:
        seed = run.config.get("train", {}).get("seed")
        path = RunDir(run.path).versions
        versions = read_json_file(path, "versions file", "delete it (it only records library versions)") \
            if path.exists() else None
        extra = f"\n# versions: {json.dumps(versions)}" if versions else ""
        parts.append(f"<details><summary>{html.escape(run.method)}, seed {seed}: <code>{html.escape(str(run.path))}"
                     f"</code></summary><pre>{html.escape(yaml.safe_dump(run.config, sort_keys=False))}"
                     f"{html.escape(extra)}</pre></details>")
    return "".join(parts)


def build_report(paths: Sequence[str | Path], **options: Any) -> str:
    """The HTML page for the runs at or below `paths` (see the module docstring); `options` are those of
    REPORT_OPTIONS, checked all at once before any run is read."""
    opts = checked(REPORT_OPTIONS, options, "report")
    runs = find_runs(paths)
    by_dataset: dict[str, list[Run]] = {}
    for run in runs:
        by_dataset.setdefault(run.dataset, []).append(run)
    body = [f"<h1>{html.escape(opts['title'])}</h1>",
            (f'<p class="meta">{len(runs)} run(s) on {html.escape(", ".join(by_dataset))} · generated '
            f"{time.strftime('%Y-%m-%d %H:%M')}</p>")]
    for dataset, dataset_runs in by_dataset.items():
        settings = group_runs(dataset_runs)
        body += [f"<h2>{html.escape(dataset)}</h2>", metrics_table(settings),
                 "<h3>Training curves</h3>", curves_section(settings)]
        trained = {label: kept for label, rs in settings.items()
                   if (kept := [r for r in rs if RunDir(r.path).best.is_file()])}
        looks = gradcam_section(trained, opts["n"], opts["n_mass"], opts["device"]) if opts["gradcam"] and trained \
            else existing_gradcam(dataset_runs)
        if looks:
            body += ["<h3>Where the models look</h3>", looks]
        if diagnosis := diagnosis_section(dataset_runs):
            body += ["<h3>Readout diagnosis</h3>", diagnosis]
    body += ["<h2>Resolved configs</h2>", configs_section(runs)]
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(opts['title'])}</title><style>{CSS}</style></head>\n"
            f"<body><main>\n{chr(10).join(body)}\n</main></body></html>\n")


def write_report(paths: Sequence[str | Path], out: str | Path, **options: Any) -> Path:
    """Write the report of `paths` to `out` (atomically) and return its path; `options`: REPORT_OPTIONS."""
    write_text(build_report(paths, **options), Path(out))
    return Path(out)
