"""Label-free debiasing at full size: readout-reweight and JTT searched on validation, winners on fresh seeds.

Every candidate is trained with seed 0 and ranked by validation worst-group accuracy of its selected
checkpoint; the winner on each dataset (`each`) and the one setting best on both together (`pooled`, the
methods' shipped defaults) are re-trained on seeds 1-3. Test numbers never choose anything. The reference
points (ERM, GroupDRO, the ceiling) on the same seeds are in calibration.json.
"""

import itertools
import json

from earlyreadout.experiments.study import Arm, Study

READOUT_REWEIGHT = [
    *[{"upweight": u, "refresh": r, "warmup_epochs": w}
      for u, r, w in itertools.product(("loss", "sample"), ("once", "epoch"), (0, 1))],
    {"weighting": "lambda", "lambda_up": 50.0},
    {"readout_layer": "stage:2"},
    {"weighting": "lambda", "lambda_up": 100.0},
    {"weighting": "lambda", "lambda_up": 100.0, "readout_layer": "stage:2"},
]
# named as the logged keys name them (erm_epochs as T, its earlier name), so the study reuses its runs
JTT = {json.dumps({"T": t, "lambda_up": lam, "upweight": u}, sort_keys=True):
       {"erm_epochs": t, "lambda_up": lam, "upweight": u}
       for t, lam, u in itertools.product((1, 2), (20.0, 50.0, 100.0), ("loss", "sample"))}

STUDY = Study(
    name="label_free",
    about=__doc__,
    data=("colored-digits", "dominoes"),
    key="{data}/{arm}/{setting}/seed{seed}",
    choose=("each", "pooled"),
    arms={
        "readout-reweight": Arm("readout-reweight", candidates=READOUT_REWEIGHT),
        "jtt": Arm("jtt", candidates=JTT),
    },
)
