"""The label-free methods' defaults on text: spurious-text at its full default size, fresh seeds.

ERM on group-balanced train (the ceiling), ERM, GroupDRO, and the label-free methods with the defaults
chosen on the image benchmarks (nothing is searched on text), seeds 1-3.
"""

from earlyreadout.experiments.study import Arm, Study

STUDY = Study(
    name="text_defaults",
    about=__doc__,
    data=("spurious-text",),
    key="{arm}/seed{seed}",
    arms={
        "ceiling": Arm("erm", ceiling=True),
        "erm": Arm("erm"),
        "groupdro": Arm("groupdro"),
        "readout-reweight": Arm("readout-reweight"),
        "jtt": Arm("jtt"),
    },
)
