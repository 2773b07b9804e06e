"""Every registered method that trains without a teacher, at full size with its defaults (issue #19's table).

On colored-digits and dominoes (spurious-text: `baselines_text.py`, the same arms in the same log), seeds 1-3. Every method is selected on validation worst-group
accuracy (group labels on val: "attributes known"); the methods that read no group labels are also selected
on worst-class accuracy (no group labels anywhere: "attributes unknown"). Training time is relative to ERM
on the same data, rule and seed. The methods are read from the registry when the spec is loaded, so a method
registered later joins the table; nothing is searched.
"""

from earlyreadout.experiments.study import Arm, Study
from earlyreadout.methods import METHODS
from earlyreadout.report.table import labels_of

STUDY = Study(
    name="baselines",
    about=__doc__,
    data=("colored-digits", "dominoes"),
    select={"worst_group": "worst_group", "worst_class": "worst_class"},
    key="{data}/{arm}/{select}/seed{seed}",
    log="baselines_runs.jsonl",
    arms={name: Arm(name, select=None if labels_of(name, {}) == "none" else ("worst_group",),
                    time_relative_to=None if name == "erm" else "erm")
          for name in METHODS if "teacher" not in METHODS.get(name).hparams},
)
