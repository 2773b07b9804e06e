"""Every registered method that trains without a teacher, at full size with its defaults (issue #19's table).

On colored-digits, dominoes and spurious-text, seeds 1-3, checkpoints selected on validation worst-group
accuracy (group labels on val) and on worst-class accuracy (none anywhere, for the methods that read
none). The methods are read from the registry when the spec is loaded, so a method registered later
joins the table; nothing is searched.
"""

from study import Arm, Study

from earlyreadout.methods import METHODS

STUDY = Study(
    name="baselines",
    about=__doc__,
    data=("colored-digits", "dominoes", "spurious-text"),
    select={"worst_group": "worst_group", "worst_class": "worst_class"},
    key="{data}/{arm}/{select}/seed{seed}",
    arms={name: Arm(name) for name in METHODS if "teacher" not in METHODS.get(name).hparams},
)
