"""Last-layer retraining at full size: ERM on fresh seeds, then DFR, AFR and readout-dfr refit each ERM run.

ERM (full default size, seeds 1-3) is trained twice per dataset: selected by validation worst-group
accuracy ("known": attributes known on val) and by worst-class accuracy ("unknown"), its runs kept. Each
is refitted: DFR (validation group labels) and AFR on half of validation (its group labels tune gamma and
the pull), both in the known setting only, and every readout-dfr candidate (no group labels anywhere).
readout-dfr's setting for each dataset is chosen leave-one-out: the candidate with the highest mean
validation worst-group accuracy over the OTHER datasets, judged on this one (`pooled`: over all of them,
the shipped default). SELF trains its own ERM stage (known setting). `time_over_erm` is a refit's time
over the ERM run it refits.
"""

import itertools

from earlyreadout.experiments.study import FRESH_SEEDS, Arm, Study

# token sequences are mean-pooled (a CLS readout on the token embedding layer reads one constant token; the
# first results, with CLS, are kept in results/archive/last_layer_cls_pool.json)
CANDIDATES = [{"readout_layer": layer, "readout_c": c, "readout_token_pool": "mean"}
              for layer, c in itertools.product(("stage:1", "stage:2", "stage:3"), (0.01, 1.0))]

STUDY = Study(
    name="last_layer",
    about=__doc__,
    data=("colored-digits", "dominoes", "spurious-text", "small-digits", "shapes-on-texture:n_classes=3"),
    select={"known": "worst_group", "unknown": "worst_class"},
    choose=("leave-one-out", "pooled"),
    log="last_layer_runs.jsonl",
    arms={
        "erm": Arm("erm", keep=True, key="{data}/erm/{select}/seed{seed}", log="last_layer_erm_runs.jsonl"),
        "dfr": Arm("dfr", refit="erm", select=("known",), key="{data}/{select}/dfr/seed{seed}"),
        "afr": Arm("afr", {"reweight_on": "val"}, refit="erm", select=("known",),
                   key="{data}/{select}/afr/seed{seed}"),
        "readout-dfr": Arm("readout-dfr", candidates=CANDIDATES, search_seeds=FRESH_SEEDS, refit="erm",
                           key="{data}/{select}/readout-dfr/{setting}/seed{seed}"),
        "self": Arm("self", select=("known",), key="{data}/self/seed{seed}", log="last_layer_self_runs.jsonl",
                    data=("colored-digits", "dominoes", "spurious-text", "small-digits",
                          "shapes-on-texture:n_classes=3")),
    },
)
