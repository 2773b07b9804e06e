"""The sieve with the reference code's structure as its defaults, against ERM and the previous defaults.

Issue #29: on one seed a reference-structured sieve (a 2-block conv head after block1, one head step, no
head re-initialisation, a forget step every 5 steps at forget lr 0.01) moved the early layers 1.6x the main
step and lifted test worst-group accuracy from 0.23 to 0.36. Here the new defaults (that structure, with
the head 32 channels wide to keep the cost under 2x ERM's), the previous defaults and ERM train at full
default size on seeds 10-12, which no earlier sieve study used, on the two binary benchmarks and on the
10-class Colored MNIST construction of LfF / SIFER built from the scikit-learn digits (stroke colour agrees
with the digit on 95 % of train, uniform on val and test: 100 groups). Checkpoints are selected by
validation worst-group accuracy. DFR (validation group labels) refits each ERM and new-default sieve run's
penultimate features: the feature-quality measure of Kirichenko et al. 2022.
"""

from earlyreadout.experiments.study import Arm, Study

PREVIOUS = {"readout_layer": "stage:2", "readout_head": "linear", "readout_width": 64, "forget_every": 1,
            "forget_lr": 0.0033, "readout_lr": 0.0026, "readout_weight_decay": 0.0, "forget_weight": 0.65,
            "readout_steps": 3, "reinit_every": 20}

STUDY = Study(
    name="sieve_reference",
    about=__doc__,
    data=("colored-digits", "dominoes", "colored-digits:labels=multiclass,correlation=0.95"),
    seeds=(10, 11, 12),
    workers=2,
    arms={
        "erm": Arm("erm", keep=True),
        "sieve": Arm("sieve", time_relative_to="erm", keep=True),
        "sieve, previous defaults": Arm("sieve", PREVIOUS, time_relative_to="erm"),
        "erm + dfr": Arm("dfr", refit="erm", key="{data}/erm + dfr/seed{seed}"),
        "sieve + dfr": Arm("dfr", refit="sieve", key="{data}/sieve + dfr/seed{seed}"),
    },
)
