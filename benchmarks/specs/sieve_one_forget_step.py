"""Does one forget step of three times the step size keep the sieve's accuracy at a fraction of its cost?

The sieve's three forget steps per event follow nearly one direction: on a frozen head, the second and third
steps' gradients have cosine 1.000 with the first and 0.99+ of its norm (`sieve_forget_gradients.json`), so
one plain-SGD step at `3 * forget_lr` makes almost the same move with one pass of the early layers instead of
three (issue #18: at most 2x ERM). Both settings train at full default size on seeds 4-9 beside ERM (train
time divided by ERM's of the same seed), and are compared on validation worst-group accuracy. Seeds 4-6
judged the earlier variant of one forget step at the unchanged `forget_lr` (`sieve_forget_steps.json`); no
seed chose anything here. The last arm reruns the one-step setting after the monitor stopped moving the early
layers' batch-norm statistics (its forward runs in train mode; they are now put back).
"""

from earlyreadout.experiments.study import Arm, Study

STUDY = Study(
    name="sieve_one_forget_step",
    about=__doc__,
    data=("colored-digits", "dominoes"),
    seeds=(4, 5, 6, 7, 8, 9),
    arms={
        "erm": Arm("erm"),
        "sieve, 3 forget steps at forget_lr 0.0011": Arm("sieve", {"forget_steps": 3, "forget_lr": 0.0011},
                                                         time_relative_to="erm"),
        "sieve, 1 forget step at forget_lr 0.0033": Arm("sieve", {"forget_steps": 1, "forget_lr": 0.0033},
                                                        time_relative_to="erm"),
        # the same settings once the monitor put back the batch-norm statistics its forward moves
        "sieve, 1 forget step at forget_lr 0.0033, monitor restoring batch-norm statistics":
            Arm("sieve", {"forget_steps": 1, "forget_lr": 0.0033}, time_relative_to="erm"),
    },
)
