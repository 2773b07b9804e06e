"""The experiment model: a raw config and its job build one run; a ceiling arm's data options."""

import pytest

from earlyreadout.config import build_config
from earlyreadout.experiments.ceiling import ceiling_options
from earlyreadout.experiments.job import job_of, run_config
from earlyreadout.experiments.plan import Plan
from earlyreadout.experiments.study import Arm, Study


def test_a_raw_config_and_its_job_build_the_same_run(tmp_path):
    for raw in ({"method": {"name": "jtt", "erm_epochs": 2}, "data": "dominoes", "model": {"width": 8},
                 "train": {"seed": 3, "epochs": 2}, "out": str(tmp_path)},
                {"method": "erm", "data": {"n_train": 64}, "model": "small-cnn", "out": str(tmp_path)}, {}):
        assert run_config(job_of("k", raw)) == build_config(raw)


def test_a_ceiling_arm_trains_on_group_balanced_train_of_a_generated_benchmark(tmp_path):
    study = Study("s", "", ("dominoes", "shapes-on-texture:n_classes=3"), {"c": Arm("erm", ceiling=True)},
                  seeds=(1,))
    jobs = Plan(study, tmp_path).searches()
    assert [j.data_options for j in jobs] == [{"correlation": 0.5}, {"n_classes": 3, "correlation": 1 / 3}]
    assert ceiling_options("colored-digits", {}) == {"correlation": 0.5}
    with pytest.raises(ValueError, match="arm 'c': 'waterbirds' has no ceiling"):
        Study("s", "", ("waterbirds",), {"c": Arm("erm", ceiling=True)})
