"""bf16 mixed precision on CPU against fp32: accuracy within seed noise, and the time it costs or saves.

ERM on colored-digits at its full default size, seeds 1-3, `train.precision` fp32 and bf16, one worker
(each pair runs back to back, so it shares the machine's load); `time_over_fp32` is bf16's training time
over fp32's, seed by seed.
"""

from earlyreadout.experiments.study import Arm, Study

STUDY = Study(
    name="precision",
    about=__doc__,
    data=("colored-digits",),
    key="{data}/{method}/{arm}/seed{seed}",
    workers=1,
    arms={
        "fp32": Arm("erm", train={"precision": "fp32"}),
        "bf16": Arm("erm", train={"precision": "bf16"}, time_relative_to="fp32"),
    },
)
