"""Does readout reweighting fail on small data for lack of optimisation steps?

small-digits (1,000 training images) gives 16 steps per epoch at batch 64, 160 in a default run, and
readout-reweight stays near ERM there (`readout_stack.json`). Two ways to four times the steps, each beside
ERM given the same steps: batch 16 (64 steps per epoch, the warm-up and every re-scoring four times as far
apart in steps) and 40 epochs at batch 64 (the warm-up as short as by default). Full default size, seeds
1-3, selected on validation worst-group accuracy. Nothing is chosen here: a default changes only after a
leave-one-benchmark-out comparison.
"""

from earlyreadout.experiments.study import Arm, Study

BATCH_16 = {"batch_size": 16}
EPOCHS_40 = {"epochs": 40}

STUDY = Study(
    name="readout_reweight_steps",
    about=__doc__,
    data=("small-digits",),
    arms={
        "erm": Arm("erm"),
        "readout-reweight": Arm("readout-reweight", time_relative_to="erm"),
        "erm, batch 16": Arm("erm", train=BATCH_16),
        "readout-reweight, batch 16": Arm("readout-reweight", train=BATCH_16, time_relative_to="erm, batch 16"),
        "erm, 40 epochs": Arm("erm", train=EPOCHS_40),
        "readout-reweight, 40 epochs": Arm("readout-reweight", train=EPOCHS_40, time_relative_to="erm, 40 epochs"),
    },
)
