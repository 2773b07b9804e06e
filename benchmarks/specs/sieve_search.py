"""The sieve's settings searched as the paper does, "no forgetting" among them, defaults chosen leave-one-out.

Issue #29: the paper tunes the forget frequency and learning rate and where the readout attaches, and its
space includes not forgetting at all. Five candidates (the reference-structured defaults, no forgetting,
forgetting at 3x the forget lr, forgetting every 2 steps instead of 5, the readout after stage 2) train on
search seed 0 of the two binary benchmarks and the 10-class Colored MNIST construction. For each benchmark
the candidate with the best mean validation worst-group accuracy on the *other two* is its default
(leave-one-benchmark-out), and that default re-trains on seeds 10-12, which chose nothing. ERM's runs on
those seeds are the ones `sieve_reference` logged (the same keys and log), so the two studies compare on
the same seeds. Test numbers choose nothing. "No forgetting" also re-trains on seeds 10-12 as an ablation: the
sieve's network without its forget step, at the sieve's main learning rate (its readout reads detached
features, so it trains the network as ERM at that rate would).
"""

from earlyreadout.experiments.study import Arm, Study

CANDIDATES = {
    "defaults": {},
    "no forgetting": {"forget_every": 0},
    "forget lr 0.03": {"forget_lr": 0.03},
    "forget every 2": {"forget_every": 2},
    "readout after stage 2": {"readout_layer": "stage:2"},
}

STUDY = Study(
    name="sieve_search",
    about=__doc__,
    data=("colored-digits", "dominoes", "colored-digits:labels=multiclass,correlation=0.95"),
    seeds=(10, 11, 12),
    choose=("leave-one-out",),
    workers=2,
    arms={
        "erm": Arm("erm", log="sieve_reference_runs.jsonl"),
        "sieve": Arm("sieve", candidates=CANDIDATES, time_relative_to="erm",
                     search_key="{data}/{arm}/search/{setting}/seed{seed}"),
        "sieve, no forgetting": Arm("sieve", CANDIDATES["no forgetting"], time_relative_to="erm"),
    },
)
