"""The shortcut verdict: what each layer's readout flags on the training split without attribute labels, and
one plain line saying whether that evidence points to a shortcut and what to run next.

A readout on a layer that reads a shortcut is wrong on the instances the shortcut contradicts, and about
as sure of itself there as where it is right: it cannot tell them apart. A readout that is merely weak is
wrong near its decision boundary, with small margins, or wrong on half the data. So a layer shows the
shortcut pattern when its readout is wrong on a minority of the training split (`MIN_ERROR_SHARE` to
`MAX_ERROR_SHARE`, at least `MIN_ERRORS` instances) and the median margin of its errors is at least
`MIN_CONFIDENCE_RATIO` times that of its right answers. The thresholds were chosen on benchmarks/verdict.py's
seed-0 runs and checked on its other seeds (docs/diagnosis.md says how often the verdict was right).
Pure functions of tensors; the diagnosis calls them on its cross-fitted train scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

CONFIDENT_MARGIN = 0.5  # a confident error: the readout's top class is wrong, ahead of the next by this much
MIN_ERROR_SHARE = 0.005  # the readout is wrong on at least this share of the training split ...
MIN_ERRORS = 10  # ... and this many instances ...
MAX_ERROR_SHARE = 0.25  # ... and on less than this share: a shortcut is contradicted by a minority
MIN_CONFIDENCE_RATIO = 0.65  # median margin where wrong over median margin where right


@dataclass(frozen=True)
class LayerEvidence:
    """What one layer's readout flags on the training split (no attribute labels read)."""

    layer: str
    n: int  # training instances scored
    errors: int  # readout wrong
    confident_errors: int  # readout wrong with margin >= CONFIDENT_MARGIN
    error_margin: float | None  # median margin where the readout is wrong (None: no errors)
    correct_margin: float | None  # median margin where it is right (None: never right)
    confident_by_class: list[int]  # confident errors per true class
    class_counts: list[int]  # training instances per class

    @property
    def error_share(self) -> float:
        """The readout's errors as a share of the training split."""
        return self.errors / self.n if self.n else 0.0

    @property
    def confident_share(self) -> float:
        """Confident errors as a share of the training split."""
        return self.confident_errors / self.n if self.n else 0.0

    @property
    def confidence_ratio(self) -> float | None:
        """How sure the readout is where it is wrong, relative to where it is right (1: cannot tell them apart)."""
        if self.error_margin is None or not self.correct_margin:
            return None
        return self.error_margin / self.correct_margin

    @property
    def top_class(self) -> tuple[int, float] | None:
        """(the class holding most confident errors, its share of them); None without confident errors."""
        if not self.confident_errors:
            return None
        k = max(range(len(self.confident_by_class)), key=lambda c: self.confident_by_class[c])
        return k, self.confident_by_class[k] / self.confident_errors

    def flags_shortcut(self) -> bool:
        """Whether this layer's readout shows the shortcut pattern (see the module docstring)."""
        ratio = self.confidence_ratio
        return (self.errors >= MIN_ERRORS and MIN_ERROR_SHARE <= self.error_share < MAX_ERROR_SHARE
                and ratio is not None and ratio >= MIN_CONFIDENCE_RATIO)

    def to_dict(self) -> dict[str, Any]:
        """The evidence as diagnosis.json records it, with the derived numbers and the layer's flag."""
        top = self.top_class
        return {**asdict(self), "error_share": self.error_share, "confident_share": self.confident_share,
                "confidence_ratio": self.confidence_ratio,
                "top_class": None if top is None else {"class": top[0], "share": top[1]},
                "flags_shortcut": self.flags_shortcut()}


def _median(values: torch.Tensor) -> float | None:
    return float(values.double().quantile(0.5)) if len(values) else None


def layer_evidence(layer: str, y: torch.Tensor, pred: torch.Tensor, margin: torch.Tensor,
                   n_classes: int) -> LayerEvidence:
    """The evidence of one layer from its readout's predictions and margins on the training split."""
    wrong = pred != y
    confident = wrong & (margin >= CONFIDENT_MARGIN)
    return LayerEvidence(
        layer=layer, n=len(y), errors=int(wrong.sum()), confident_errors=int(confident.sum()),
        error_margin=_median(margin[wrong]), correct_margin=_median(margin[~wrong]),
        confident_by_class=torch.bincount(y[confident], minlength=n_classes).tolist(),
        class_counts=torch.bincount(y, minlength=n_classes).tolist())


def describe(e: LayerEvidence, class_names: list[str]) -> str:
    """What a layer's readout flags, in words: how many, how confidently, how concentrated by class."""
    ratio = e.confidence_ratio
    sure = "" if ratio is None else (f"; median margin {e.error_margin:.2f} where wrong vs {e.correct_margin:.2f} "
                                     f"where right (ratio {ratio:.2f})")
    top = e.top_class
    if top is None:
        where = ""
    elif len(class_names) <= 5:
        where = "; confident ones by class: " + ", ".join(f"{name!r} {k}" for name, k in zip(class_names,
                                                                                          e.confident_by_class))
    else:
        where = f"; {100 * top[1]:.0f}% of the confident ones in class {class_names[top[0]]!r}"
    return (f"wrong on {e.errors} of {e.n} training instances ({100 * e.error_share:.1f}%), {e.confident_errors} "
            f"confidently (margin >= {CONFIDENT_MARGIN}){sure}{where}"
            + ("  <- shortcut pattern" if e.flags_shortcut() else ""))


@dataclass(frozen=True)
class Verdict:
    """Whether the readouts' evidence points to a shortcut, the layer that shows it best, and what to run."""

    shortcut: bool
    layer: str | None  # the flagging layer whose errors are surest relative to its right answers (None: none)
    line: str  # the plain sentence shown to the user
    next_command: str | None

    def to_dict(self) -> dict[str, Any]:
        """The verdict as diagnosis.json records it (with the rule's thresholds)."""
        return {**asdict(self), "rule": {"min_error_share": MIN_ERROR_SHARE, "min_errors": MIN_ERRORS,
                                         "max_error_share": MAX_ERROR_SHARE,
                                         "min_confidence_ratio": MIN_CONFIDENCE_RATIO}}


def verdict(evidence: list[LayerEvidence], run: str) -> Verdict:
    """The verdict on run directory `run` from its readout layers' evidence (not the model's own output, which
    was trained on these very instances), naming the command to run next when it points to a shortcut."""
    flagging = [e for e in evidence if e.flags_shortcut()]
    if not flagging:
        return Verdict(False, None, "no shortcut evidence: no readout is wrong on a minority of the training split "
                       "about as surely as it is right elsewhere; nothing to fix from this diagnosis", None)
    best = max(flagging, key=lambda e: e.confidence_ratio or 0.0)
    command = f"earlyreadout retrain --run {run} --method readout-dfr --out {run.rstrip('/')}-readout-dfr"
    return Verdict(True, best.layer, f"shortcut likely: the {best.layer} readout is wrong on {best.errors} training "
                   f"instances ({100 * best.error_share:.1f}%) about as surely as it is right on the others (margin "
                   f"ratio {best.confidence_ratio:.2f}), the pattern of a feature the label only usually agrees "
                   f"with; next: `{command}`", command)
