"""Deep Feature Reweighting (Kirichenko et al., ICLR 2023; reference `dfr_evaluate_spurious.py`): an L1
logistic regression on standardised embeddings of group-balanced subsamples, C chosen on held-out halves.

Pure functions of arrays. `groups` are whatever groups balance the subsamples and score the C grid: the
true (label, attribute) groups for DFR, pseudo-groups from early readouts for the readout variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

# scikit-learn 1.8 spells an L1 penalty `l1_ratio=1` and deprecates `penalty`
L1 = ({"l1_ratio": 1.0} if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)
      else {"penalty": "l1"})

# the reference's C grids (inverse L1 strength)
C_GRIDS: dict[str, tuple[float, ...]] = {
    "waterbirds": (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01),
    "celeba": (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003),
}


@dataclass
class LinearHead:
    """A classifier on raw embeddings, `logits = z @ weight.T + bias`, and how it was chosen."""

    weight: np.ndarray  # (n_classes, D)
    bias: np.ndarray  # (n_classes,)
    info: dict = field(default_factory=dict)

    def logits(self, z: np.ndarray) -> np.ndarray:
        return z @ self.weight.T + self.bias


def balanced_subsample(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of an equal number of examples from every group present (the smallest group's size),
    drawn without replacement."""
    members = [rng.permutation(np.flatnonzero(groups == k)) for k in np.unique(groups)]
    smallest = min(len(m) for m in members)
    return np.sort(np.concatenate([m[:smallest] for m in members]))


def worst_group_accuracy(pred: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """The lowest accuracy over the groups present."""
    return float(min((pred[groups == k] == y[groups == k]).mean() for k in np.unique(groups)))


def standardiser(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of `z`'s columns as StandardScaler computes them (a constant column gets scale 1)."""
    scale = z.std(0)
    return z.mean(0), np.where(scale > 0, scale, 1.0)


def fit_l1(x: np.ndarray, y: np.ndarray, c: float, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight (n_classes, D), bias) of an L1 logistic regression (liblinear) with inverse strength `c`;
    two classes become logits (-(w.x + b) / 2, (w.x + b) / 2): the softmax of (0, w.x + b), but each class's
    logit depends on the features, so Grad-CAM has evidence to show for either (a zero row leaves class 0's
    maps blank). More classes are one-vs-rest binary fits (what liblinear did for several classes before
    scikit-learn 1.8 stopped accepting them), one score per class."""
    def binary(target: np.ndarray) -> tuple[np.ndarray, float]:
        model = LogisticRegression(C=c, solver="liblinear", random_state=0, **L1).fit(x, target)
        return model.coef_[0], float(model.intercept_[0])

    if n_classes == 2:
        w, b = binary(y)
        return np.vstack([-w / 2, w / 2]), np.array([-b / 2, b / 2])
    weight, bias = np.zeros((n_classes, x.shape[1])), np.full(n_classes, -np.inf)
    for k in np.unique(y):  # a class absent from the subsample gets no score
        weight[k], bias[k] = binary((y == k).astype(int))
    return weight, bias


@dataclass(frozen=True)
class Plan:
    """The seeded subsamples one DFR fit uses: per tuning repeat (fit indices, scoring indices), and the
    balanced subsamples of all the data whose coefficients are averaged."""

    tuning: list[tuple[np.ndarray, np.ndarray]]
    final: list[np.ndarray]


def plan(groups: np.ndarray, tune_repeats: int, retrains: int, seed: int) -> Plan:
    """Split in halves at random `tune_repeats` times (a balanced subsample of one half fits, the other
    half scores), then draw `retrains` balanced subsamples of everything."""
    rng = np.random.default_rng(seed)
    tuning = []
    for _ in range(tune_repeats):
        order = rng.permutation(len(groups))
        score, fit = order[: len(groups) // 2], order[len(groups) // 2:]
        tuning.append((fit[balanced_subsample(groups[fit], rng)], np.sort(score)))
    return Plan(tuning, [balanced_subsample(groups, rng) for _ in range(retrains)])


def dfr(z: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, c_grid: tuple[float, ...],
        tune_repeats: int = 5, retrains: int = 10, seed: int = 0) -> LinearHead:
    """DFR on embeddings `z`: standardise, choose C by mean worst-group accuracy over the tuning halves
    (ties: the first in the grid), average the coefficients of `retrains` balanced refits with that C, and
    fold the standardisation into the head so it applies to raw embeddings."""
    mean, scale = standardiser(z)
    x = (z - mean) / scale
    steps = plan(groups, tune_repeats, retrains, seed)
    scores = {}
    for c in c_grid:
        accs = []
        for fit, score in steps.tuning:
            weight, bias = fit_l1(x[fit], y[fit], c, n_classes)
            accs.append(worst_group_accuracy((x[score] @ weight.T + bias).argmax(1), y[score], groups[score]))
        scores[c] = float(np.mean(accs))
    best = max(c_grid, key=lambda c: scores[c])
    fits = [fit_l1(x[idx], y[idx], best, n_classes) for idx in steps.final]
    weight = np.mean([w for w, _ in fits], axis=0)
    bias = np.mean([b for _, b in fits], axis=0)
    return LinearHead(weight / scale, bias - (weight * mean / scale).sum(1),
                      {"C": best, "tuning_worst_group": {str(c): s for c, s in scores.items()},
                       "balanced_size": len(steps.final[0])})
