"""Early readouts in place of group labels: a logistic readout on pooled early-layer features predicts the
label; where it is wrong, the simple feature contradicts the label. (label, readout's predicted class) then
stands in for (label, attribute) in last-layer retraining: balancing, weighting and model selection."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

PSEUDO_GROUPS = ("predicted", "flagged")


def readout_probabilities(fit_x: np.ndarray, fit_y: np.ndarray, score_x: np.ndarray, c: float) -> np.ndarray:
    """Class probabilities on `score_x` of an L2 logistic readout (inverse strength `c`, readout-dfr's
    `readout_c`) fitted on standardised `fit_x`."""
    scaler = StandardScaler().fit(fit_x)
    model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(fit_x), fit_y)
    probs = np.zeros((len(score_x), int(fit_y.max()) + 1))
    probs[:, model.classes_] = model.predict_proba(scaler.transform(score_x))
    return probs


def crossfit_probabilities(x: np.ndarray, y: np.ndarray, folds: int, seed: int, c: float) -> np.ndarray:
    """Readout probabilities of every instance from a readout that never saw it: fold k is scored by a
    readout fitted on the other folds."""
    ids = np.random.default_rng(seed).permutation(len(y)) % folds
    probs = np.zeros((len(y), int(y.max()) + 1))
    for k in range(folds):
        part = readout_probabilities(x[ids != k], y[ids != k], x[ids == k], c)
        probs[ids == k, : part.shape[1]] = part
    return probs


def pseudo_groups(probs: np.ndarray, y: np.ndarray, n_classes: int, kind: str = "predicted",
                  min_size: int = 0) -> np.ndarray:
    """Pseudo-group of each instance: `predicted` is (label, readout's argmax), which keeps apart the
    minorities of one class that look like different other classes; `flagged` is (label, readout wrong).
    Pseudo-groups with fewer than `min_size` members join their label's agreeing group (readout right),
    so a handful of stray flags cannot shrink a balanced subsample to a handful of examples."""
    pred = probs.argmax(1)
    if kind == "predicted":
        groups, agreeing = y * n_classes + pred, y * n_classes + y
    elif kind == "flagged":
        groups, agreeing = y * 2 + (pred != y), y * 2
    else:
        raise ValueError(f"unknown pseudo-group kind {kind!r}; choose one of {', '.join(PSEUDO_GROUPS)}")
    ids, counts = np.unique(groups, return_counts=True)
    small = np.isin(groups, ids[counts < min_size])
    return np.where(small, agreeing, groups)
