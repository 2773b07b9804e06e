"""Debiased distillation at full size: KD, JTT-KD and DeDiER students of a robust teacher, 3 fresh seeds.

Per dataset, at the full default size and training settings: a GroupDRO teacher (small-cnn width 32,
seed 0, its run kept), then students (small-cnn width 16) with each method's defaults, seeds 1-3: ERM,
KD, JTT-KD, DeDiER (the reference's single readout, re-fit each epoch) and DeDiER with cross-fitted
readouts (folds=2). No setting is searched.
"""

from earlyreadout.experiments.study import Arm, Study

STUDENT = {"name": "small-cnn", "width": 16}

STUDY = Study(
    name="distill_full_size",
    about=__doc__,
    data=("colored-digits", "dominoes"),
    arms={
        "teacher": Arm("groupdro", {"balanced_sampling": False}, model={"name": "small-cnn", "width": 32},
                       seeds=(0,), key="{data}/teacher", keep=True),
        "erm": Arm("erm", model=STUDENT),
        "kd": Arm("kd", model=STUDENT, teacher="teacher"),
        "jtt-kd": Arm("jtt-kd", model=STUDENT, teacher="teacher"),
        "dedier": Arm("dedier", model=STUDENT, teacher="teacher"),
        "dedier-crossfit": Arm("dedier", {"folds": 2}, model=STUDENT, teacher="teacher"),
    },
)
