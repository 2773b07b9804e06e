"""Does the Feature Sieve bite harder with re-initialised heads, or with sieves on two stages at once?

Each variant changes the earlier `sieve` defaults in one respect and trains at full default size on seeds
1-3 beside those defaults; every epoch's fresh probes of the readout layer(s) (`probe_spurious`: the
spurious attribute) show whether forgetting removed what a new head can still read. The variant best on
validation over both benchmarks (`pooled`) is judged again on seeds 4-6, which took no part in choosing
it, beside ERM at its defaults and ERM at the sieve's learning rate (so the forgetting's share is not the
learning rate's).
"""

from earlyreadout.experiments.study import Arm, Study
from earlyreadout.methods import METHODS

VARIANTS = {
    "defaults": {},
    "fresh head every 20 steps (3 head steps per batch)": {"reinit_every": 20, "readout_steps": 3},
    "sieves on stage 1 and stage 2": {"readout_layer": "stage:1,stage:2"},
}

STUDY = Study(
    name="sieve_heads",
    about=__doc__,
    data=("colored-digits", "dominoes"),
    seeds=(4, 5, 6),
    key="{data}/{arm}/confirm/seed{seed}",
    choose=("pooled",),
    arms={
        "sieve": Arm("sieve", candidates=VARIANTS, search_seeds=(1, 2, 3),
                     search_key="{data}/{setting}/seed{seed}"),
        "erm": Arm("erm"),
        "erm_at_the_sieve_lr": Arm("erm", {"lr": METHODS.get("sieve").hparams["lr"].default}),
    },
)
