"""Reference points for the built-in benchmarks: where "does nothing" and "best possible" lie.

ERM on group-balanced train (`data.correlation=0.5`, the ceiling), ERM, and GroupDRO without (the
default) and with the reference code's group-balanced sampling (not on shapes-on-texture); full default size,
seeds 1-3.
"""

from earlyreadout.experiments.study import Arm, Study

STUDY = Study(
    name="calibration",
    about=__doc__,
    data=("colored-digits", "dominoes", "small-digits", "shapes-on-texture"),
    arms={
        "ceiling": Arm("erm", ceiling=True),
        "erm": Arm("erm"),
        "groupdro": Arm("groupdro", {"balanced_sampling": False}),
        "groupdro-balanced": Arm("groupdro", {"balanced_sampling": True},
                                 data=("colored-digits", "dominoes", "small-digits")),
    },
)
