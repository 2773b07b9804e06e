"""Every declared method setting moves the result: changed alone from its default, it changes the network a
few steps of training (and any refit after selection) leave behind. A setting that does nothing is a bug or a
documented exemption below. The optimizer settings every method shares are checked once, on ERM."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from conftest import tiny_config
from earlyreadout.distributed import DistInfo
from earlyreadout.methods import METHODS
from earlyreadout.methods.base import OPTIMIZER_HPARAMS
from earlyreadout.params import Choice, Param
from earlyreadout.train.engine import build_run, fit_epoch, train

TEACHER = "<the teacher run>"
# values to try where the generic choice (search space, choices, a flip, a doubling) does not apply
ALTERNATIVES: dict[tuple[str, str], Any] = {
    ("afr", "gamma"): 5.0,  # default null: chosen on validation
    ("afr", "pull"): 0.5,
    ("jtt-kd", "erm_run"): TEACHER,  # a finished ERM run instead of the ERM stage
    ("self", "k"): 5,
    ("sieve", "reinit_every"): 1,  # the searched 20 and 100 act after more steps than the test takes
    ("dfr", "tune_repeats"): 1,
    ("readout-dfr", "tune_repeats"): 1,
    ("eiil", "steps"): 1,  # 1,000 and the default 20,000 both converge to one assignment on tiny data
    ("irm", "anneal_steps"): 1,  # the default 500 and the searched 10,000 both outlast the test's steps
    ("spare", "silhouette_threshold"): -1.0,  # no class below it: every class samples with power 1
}
# settings that act only beside another one: both runs use these companions
COMPANIONS: dict[tuple[str, str], dict[str, Any]] = {
    **{(m, "readout_width"): {"readout_head": "mlp"} for m in ("dedier", "readout-reweight", "sieve")},
    **{(m, "readout_depth"): {"readout_head": "conv"} for m in ("dedier", "readout-reweight", "sieve")},
    # the head's momentum and re-initialisation act from its second step on; at the default forget_every=5 the
    # test's 4 steps forget only at the first, so they could never reach the network
    **{("sieve", k): {"forget_every": 1} for k in ("readout_momentum", "reinit_every")},
    ("readout-reweight", "lambda_up"): {"weighting": "lambda"},
    ("readout-reweight", "refresh"): {"warmup_epochs": 0},
    ("irm", "penalty"): {"anneal_steps": 1},  # the penalty weight applies after the annealing steps
    ("eiil", "assign_lr"): {"steps": 1},  # the default steps converge to one assignment from either rate
    # at the default kd_weight=1 the cross-entropy term is off, so weighting kd alone is weighting both
    **{(m, "weighted_terms"): {"kd_weight": 0.5} for m in ("dedier", "jtt-kd")},
    ("readout-dfr", "folds"): {"fit_on": "train"},  # the folds cross-fit the readout on train only
    # on 10 classes the 48 validation examples make pseudo-groups below the default min_group_size 10, which all
    # merge into their labels' agreeing groups
    ("readout-dfr", "pseudo_groups"): {"min_group_size": 1},
}
# data on which a setting can move, for both runs (the tiny colored-digits options otherwise)
DATA: dict[tuple[str, str], dict[str, Any]] = {
    # at correlation 0.97 a readout on any layer reads the label off the colour and flags the same examples
    **{("readout-dfr", k): {"correlation": 0.5} for k in ("readout_layer", "folds")},
    # with two classes (label, predicted class) and (label, readout wrong) are one partition of the examples
    ("readout-dfr", "pseudo_groups"): {"labels": "multiclass"},
}
# settings that cannot move a few steps on tiny image data, and why
POOL = "pools token sequences; the tiny data are images (the text tests use it)"
SAME_TEACHER = "speed only: cached and recomputed teacher outputs are equal (test_distill)"
EXEMPT: dict[tuple[str, str], str] = {
    **{(m, "readout_token_pool"): POOL for m in ("dedier", "readout-reweight", "sieve", "readout-dfr")},
    **{(m, "cache_teacher"): SAME_TEACHER for m in ("kd", "dedier", "jtt-kd")},
    **{(m, "retrains"): "the tiny validation split is group-balanced, so every balanced subsample is all of it"
       for m in ("dfr", "readout-dfr")},
    ("self", "early_epoch"): "must stay below train.epochs, which is 2 here",
    ("sieve", "probe"): "measurement only: a fresh probe's accuracy in the log",
    ("sieve", "monitor"): "measurement only: the readout's accuracy after each forget step in the log; the model "
                          "is the same with or without it (test_sieve)",
}
STEPS = 2


def alternative(name: str, key: str, spec: Param) -> Any:
    """A valid value other than the default."""
    if (name, key) in ALTERNATIVES:
        return ALTERNATIVES[name, key]
    options = spec.choices or (spec.search.options if isinstance(spec.search, Choice) else None)
    if options:
        return next(o for o in options if o != spec.default)
    if spec.type is bool:
        return not spec.default
    if spec.search is not None and spec.default is not None:
        low, high = spec.search.low, spec.search.high
        return high if spec.default != high else low
    if spec.type in (int, float) and spec.default is not None:
        value = spec.default * 2 if spec.default else spec.type(1)
        return value if spec.high is None or value <= spec.high else spec.type((spec.default + (spec.low or 0)) / 2)
    raise AssertionError(f"{name}.{key}: give a value to try in ALTERNATIVES, or a reason in EXEMPT")


def settings() -> list[tuple[str, str]]:
    shared = [("erm", key) for key in OPTIMIZER_HPARAMS]
    own = [(name, key) for name in METHODS for key in METHODS.get(name).hparams if key not in OPTIMIZER_HPARAMS]
    return shared + [(n, k) for n, k in own if k not in ("teacher", "classifier") and (n, k) not in EXEMPT]


def trained(name: str, hp: dict[str, Any], tmp_path, teacher: str, data: dict[str, Any] | None = None
            ) -> dict[str, torch.Tensor]:
    """The network's state after two epochs of `STEPS` updates and the refit after selection, on the tiny
    colored-digits data (with `data` options changed)."""
    hp = {**({"teacher": teacher} if "teacher" in METHODS.get(name).hparams else {}), **hp}
    cfg = tiny_config(tmp_path, name, hp=hp, data_options=data or {})
    method, _, loader = build_run(cfg, torch.device("cpu"), DistInfo())
    step = 0
    for epoch in range(2):
        _, _, step = fit_epoch(method, loader, epoch, step, 0, torch.device("cpu"), max_steps=STEPS)
    method.after_selection()
    return {k: v.detach().clone() for k, v in method.network.state_dict().items()}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(tiny_config(out, train={"epochs": 1}), log=lambda _m: None)
    return str(out / "run")


_DEFAULTS: dict[str, dict[str, torch.Tensor]] = {}  # the default run of each method and companions


@pytest.mark.slow
@pytest.mark.parametrize("name, key", settings())
def test_every_setting_moves_the_result(name, key, tmp_path, teacher):
    spec = METHODS.get(name).hparams[key]
    companions, data = COMPANIONS.get((name, key), {}), DATA.get((name, key), {})
    context = f"{name} {sorted(companions.items())} {sorted(data.items())}"
    if context not in _DEFAULTS:
        _DEFAULTS[context] = trained(name, companions, tmp_path / "default", teacher, data)
    value = alternative(name, key, spec)
    value = teacher if value == TEACHER else value
    changed = trained(name, {**companions, key: value}, tmp_path / "changed", teacher, data)
    base = _DEFAULTS[context]
    assert any(not torch.equal(changed[k], base[k]) for k in base), f"{name}: {key}={value!r} changed nothing"
