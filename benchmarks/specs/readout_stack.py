"""Early readouts in both stages against tuned JTT: readout-reweight, then readout-dfr refits its selected model.

readout-reweight (its defaults: cross-fitted early readouts up-weight what they get wrong; no group labels)
and JTT (its tuned defaults) train at full default size on seeds 1-3, selected by validation worst-group
accuracy, their runs kept. readout-dfr (its leave-one-out defaults from `last_layer`: no group labels
anywhere) and DFR (validation group labels, for reference) refit the last layer of each selected model.
ERM trains beside them and is refitted by readout-dfr too, and the study picks which first stage readout-dfr
refits (readout-reweight or ERM) by each choice rule, leave-one-benchmark-out included. The 3-class shapes
benchmark (9 groups) runs at the same 10 epochs as the rest. `time_over_erm` is not reported here: the
refit's time is in each row (`retrain_time_s`).
"""

from earlyreadout.experiments.study import Arm, Study

SHAPES_3 = "shapes-on-texture:n_classes=3"
WITH_JTT = ("colored-digits", "spurious-text", "small-digits", "shapes-on-texture", SHAPES_3)  # dominoes: label_free.json

STUDY = Study(
    name="readout_stack",
    about=__doc__,
    data=("colored-digits", "spurious-text", "small-digits", "dominoes", "shapes-on-texture", SHAPES_3),
    select={"known": "worst_group"},
    choose=("each", "pooled", "leave-one-out"),
    picks={"first stage for readout-dfr": ("readout-reweight + readout-dfr", "erm + readout-dfr")},
    key="{data}/{arm}/seed{seed}",
    log="readout_stack_runs.jsonl",
    arms={
        "erm": Arm("erm", keep=True),
        "readout-reweight": Arm("readout-reweight", keep=True),
        "jtt": Arm("jtt", keep=True, data=WITH_JTT),
        "readout-reweight + readout-dfr": Arm("readout-dfr", refit="readout-reweight",
                                              key="{data}/readout-reweight/seed{seed}/readout-dfr",
                                              log="readout_stack_retrains.jsonl"),
        "erm + readout-dfr": Arm("readout-dfr", refit="erm", key="{data}/erm/seed{seed}/readout-dfr",
                                 log="readout_stack_retrains.jsonl"),
        "readout-reweight + dfr": Arm("dfr", refit="readout-reweight", key="{data}/readout-reweight/seed{seed}/dfr",
                                      log="readout_stack_retrains.jsonl"),
        "jtt + readout-dfr": Arm("readout-dfr", refit="jtt", key="{data}/jtt/seed{seed}/readout-dfr",
                                 log="readout_stack_retrains.jsonl", data=WITH_JTT),
    },
)
