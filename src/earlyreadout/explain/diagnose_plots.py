"""Plots of a diagnosis: confident-error score distributions per group, and flagging AUC by layer depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_diagnosis(summary: dict[str, Any], rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write `diagnosis_scores.png` and (with group labels) `diagnosis_auc.png`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(summary["layers"])
    names = summary["group_names"]
    minority = set(summary["minority_groups"])
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.0), sharey=True, squeeze=False)
    for ax, layer in zip(axes[0], layers):
        train = [r for r in rows if r["split"] == "train" and r["layer"] == layer]
        for g, name in enumerate(names):
            scores = [r["score"] for r in train if r["g"] == g]
            if scores:
                ax.hist(scores, bins=20, range=(0, 1), density=True, histtype="step", linewidth=1.5,
                        linestyle="--" if name in minority else "-", label=f"{name} (n={len(scores)})")
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("confident-error score (train)")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=6, title="dashed: minority", title_fontsize=6, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0))  # beside the last panel, off the histograms
    fig.tight_layout()
    paths = [out_dir / "diagnosis_scores.png"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close(fig)
    flagged = [(layer, e["flagging"]) for layer, e in summary["layers"].items() if e.get("flagging", {}).get("auc")]
    if flagged:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        xs = range(len(flagged))
        ax.plot(xs, [f["auc"] for _, f in flagged], "o-", label="ROC-AUC")
        ax.plot(xs, [f["average_precision"] for _, f in flagged], "s--", label="average precision")
        ax.axhline(flagged[0][1]["positive_rate"], color="grey", linewidth=0.8, label="chance AP")
        ax.set_xticks(list(xs), [layer for layer, _ in flagged], rotation=30, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("layer (early -> late)")
        ax.set_title("flagging minority-group training instances", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        fig.tight_layout()
        paths.append(out_dir / "diagnosis_auc.png")
        fig.savefig(paths[1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths
