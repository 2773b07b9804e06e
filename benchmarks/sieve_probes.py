"""Layer-wise decodability, as in the sieve paper: a linear probe per stage, ERM vs sieve, core vs spurious.

For each dataset, ERM and the sieve with its defaults (same data sizes and epochs as
benchmarks/sieve_vs_erm.py, seed 0) are trained; on the test split, where label and spurious attribute are independent, a
logistic-regression probe per stage (features average-pooled to a 4x4 grid, then flattened) is fit on
one half and scored on the other, for the label (core) and for the attribute (spurious).
Writes benchmarks/results/sieve_probes.json and sieve_probes.png.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from sieve_vs_erm import SETUP
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.models.layers import FeatureTap
from earlyreadout.params import resolve
from earlyreadout.train.engine import train
from earlyreadout.train.runs import load_trained

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).parent / "results"
STAGES = ["block1", "block2", "block3", "block4"]


def stage_features(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each stage's output, pooled to 4x4 and flattened, for inputs `x` (eval mode, batches of 256)."""
    out: dict[str, list[torch.Tensor]] = {s: [] for s in STAGES}
    with torch.no_grad(), FeatureTap(model, STAGES) as tap:
        for chunk in x.split(256):
            model(chunk)
            for s in STAGES:
                out[s].append(F.adaptive_avg_pool2d(tap.features[s], 4).flatten(1))
    return {s: torch.cat(v) for s, v in out.items()}


def probe_accuracy(features: torch.Tensor, target: torch.Tensor) -> float:
    """Held-out accuracy of a logistic-regression probe fit on the first half, scored on the second."""
    half = len(target) // 2
    scaler = StandardScaler().fit(features[:half].numpy())
    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(scaler.transform(features[:half].numpy()), target[:half].numpy())
    return float(clf.score(scaler.transform(features[half:].numpy()), target[half:].numpy()))


def main() -> None:
    torch.set_num_threads(1)
    results: dict = {}
    options = SETUP["data_options"]
    with tempfile.TemporaryDirectory() as tmp:
        for data in ("dominoes", "colored-digits"):
            resolved, _ = resolve(DATASETS.get(data).options, options, data)
            splits = load_splits(data, resolved)
            test = splits["test"]
            x, y, a = test.tensors(), test.y, test.a
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
            x, y, a = x[order], y[order], a[order]
            results[data] = {}
            for method in ("erm", "sieve"):
                out = f"{tmp}/{data}-{method}"
                cfg = build_config({"method": method, "data": {"name": data, **options},
                                    "train": {**SETUP["train"], "seed": 0}, "out": out})
                train(cfg, log=lambda _m: None, splits=splits)
                _, model, _ = load_trained(out)
                feats = stage_features(model, x)
                results[data][method] = {
                    "core": {s: probe_accuracy(feats[s], y) for s in STAGES},
                    "spurious": {s: probe_accuracy(feats[s], a) for s in STAGES},
                }
                print(data, method, json.dumps(results[data][method]), flush=True)
    (RESULTS / "sieve_probes.json").write_text(json.dumps(
        {"split": "test (label and attribute independent), probe fit on one half, scored on the other",
         "sieve": "method defaults", "data_options": options, "train": SETUP["train"],
         "features": "stage output average-pooled to 4x4, standardised, logistic regression",
         "results": results}, indent=2) + "\n")
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, (data, by_method) in zip(axes[0], results.items()):
        for method, style in (("erm", "--"), ("sieve", "-")):
            for target, color in (("core", "tab:blue"), ("spurious", "tab:red")):
                ax.plot(STAGES, [by_method[method][target][s] for s in STAGES], style, color=color, marker="o",
                        label=f"{method} {target}")
        ax.set_title(data)
        ax.set_ylabel("probe accuracy (held out)")
        ax.set_ylim(0.4, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "sieve_probes.png", dpi=120)


if __name__ == "__main__":
    main()
