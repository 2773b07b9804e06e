"""Why readout-reweight trails tuned JTT: JTT's restart and fixed flags, and its weight strength, tried on
readout-reweight, each chosen leave-one-benchmark-out and judged on fresh seeds.

Candidates (seed 0, selected by validation worst-group accuracy): the shipped defaults (exp weights,
flags refreshed each epoch, training continued after a 1-epoch warm-up); JTT's schedule with the readout's
flags (`restart`: the warm-up, one scoring, then the initial weights back; `refresh=once`), with JTT's
`lambda_up` 100 or with the exp weights; and `lambda_up` 100 with fixed flags but no restart. For each
benchmark the candidate with the best mean validation worst-group accuracy on the others runs on seeds 1-3.
"""

from earlyreadout.experiments.study import Arm, Study

CANDIDATES = {
    "defaults": {},
    "restart-lambda100-once": {"restart": True, "refresh": "once", "weighting": "lambda", "lambda_up": 100.0},
    "restart-exp-once": {"restart": True, "refresh": "once"},
    "lambda100-once": {"refresh": "once", "weighting": "lambda", "lambda_up": 100.0},
}

STUDY = Study(
    name="readout_reweight_variants",
    about=__doc__,
    data=("small-digits", "spurious-text", "colored-digits"),
    select={"known": "worst_group"},
    choose=("leave-one-out",),
    key="{data}/{setting}/seed{seed}",
    log="readout_reweight_variants_runs.jsonl",
    arms={"readout-reweight": Arm("readout-reweight", candidates=CANDIDATES)},
)
