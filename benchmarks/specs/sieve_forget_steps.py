"""Does one forget step per event keep the sieve's accuracy at about half its cost (issue #18: at most 2x ERM)?

`forget_steps=1` (1.57x an ERM step in `sieve_cost.json`, against 2.70x for the three of the defaults) trains
at full default size on the held-out seeds 4-6 of `sieve_heads`, beside the defaults' runs there (the same
keys and log: those runs are reused, not retrained) and ERM's.
"""

from earlyreadout.experiments.study import Arm, Study

STUDY = Study(
    name="sieve_forget_steps",
    about=__doc__,
    data=("colored-digits", "dominoes"),
    seeds=(4, 5, 6),
    key="{data}/{arm}/confirm/seed{seed}",
    log="sieve_heads_runs.jsonl",
    arms={
        "erm": Arm("erm"),
        "sieve": Arm("sieve", {"forget_steps": 3, "forget_lr": 0.0011}),  # the defaults of then
        "sieve, forget_steps=1": Arm("sieve", {"forget_steps": 1, "forget_lr": 0.0011}),
    },
)
