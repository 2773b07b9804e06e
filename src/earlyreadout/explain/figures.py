"""Pictures of explanations: Grad-CAM overlays as a PNG grid, token attributions as inline-styled HTML."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

OK_COLOR, WRONG_COLOR = "#1a7f37", "#cf222e"


def to_rgb(x: torch.Tensor) -> np.ndarray:
    """An (H, W, 3) array in [0, 1] for display from a (C, H, W) input (1 or 3 channels, others averaged)."""
    x = x.detach().float().cpu()
    if x.shape[0] != 3:
        x = x.mean(0, keepdim=True).expand(3, -1, -1)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:  # normalised inputs: stretch to the visible range
        x = (x - lo) / max(hi - lo, 1e-12)
    return x.permute(1, 2, 0).clamp(0, 1).numpy()


def png_bytes(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (Agg, no pyplot state)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _plain(ax: object) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def overlay_grid(images: torch.Tensor, labels: Sequence[int], class_names: Sequence[str],
                 rows: Sequence[tuple[str, torch.Tensor, torch.Tensor]], title: str, columns: int = 8) -> bytes:
    """PNG: one column per example; the input, then one Grad-CAM overlay per (name, maps, predictions) row.

    Each overlay is titled with the predicted class, green when right and red when wrong, and says "blank"
    where its map is all zero (no evidence for the prediction at that layer), so an empty cell is never silent.
    """
    n = len(images)
    columns = max(1, min(columns, n))
    blocks = -(-n // columns)
    per_block = 1 + len(rows)
    height = 1.3 * blocks * per_block + 0.5
    fig = Figure(figsize=(1.25 * columns + 0.9, height))
    axes = fig.subplots(blocks * per_block, columns, squeeze=False)
    fig.subplots_adjust(top=1 - 0.55 / height, hspace=0.35)
    for ax in axes.flat:
        _plain(ax)
    for i in range(n):
        block, col = divmod(i, columns)
        top = block * per_block
        rgb = to_rgb(images[i])
        ax = axes[top, col]
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"y={class_names[labels[i]]}", fontsize=8)
        for r, (_, maps, preds) in enumerate(rows, start=1):
            ax = axes[top + r, col]
            ax.imshow(rgb, interpolation="nearest")
            ax.imshow(maps[i].cpu().numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
            pred = int(preds[i])
            blank = " (blank)" if float(maps[i].max()) == 0 else ""
            ax.set_title(f"pred {class_names[pred]}{blank}", fontsize=8,
                         color=OK_COLOR if pred == labels[i] else WRONG_COLOR)
    for block in range(blocks):
        axes[block * per_block, 0].set_ylabel("input", fontsize=9)
        for r, (name, _, _) in enumerate(rows, start=1):
            axes[block * per_block + r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height)
    return png_bytes(fig)


def _token_style(value: float, scale: float, spurious: bool) -> str:
    strength = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0)
    rgb = "230,120,20" if value >= 0 else "40,110,220"
    style = f"background:rgba({rgb},{0.85 * strength:.2f});padding:1px 3px;border-radius:3px;margin:1px"
    if spurious:
        style += ";outline:2px solid #cf222e;font-weight:600"
    return style


def token_html(tokens: Sequence[Sequence[str]], attributions: Sequence[Sequence[float]],
               captions: Sequence[str], spurious: set[str]) -> str:
    """HTML: one line per example, each token shaded by its attribution (orange supports the prediction,
    blue opposes it), spurious tokens outlined in red."""
    lines = []
    for words, attr, caption in zip(tokens, attributions, captions):
        scale = max((abs(a) for a in attr), default=0.0)
        spans = " ".join(
            f'<span style="{_token_style(a, scale, w in spurious)}" title="{a:+.3g}">{html.escape(w)}</span>'
            for w, a in zip(words, attr))
        lines.append(f'<div style="margin:4px 0;line-height:1.9"><span style="display:inline-block;'
                     f'min-width:14em;color:#57606a;font-size:0.85em">{html.escape(caption)}</span> {spans}</div>')
    return "\n".join(lines)
