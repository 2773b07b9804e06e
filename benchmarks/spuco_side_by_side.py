"""earlyreadout's GroupDRO, JTT, SPARE, EIIL and re-sampling ERMs side by side with SpuCo's (pip `spuco`).

`python -m benchmarks.spuco_side_by_side [--env DIR] [--seeds 1,2,3]` installs spuco (pinned) into a
throwaway virtual environment (`--env`, reused when it holds that version already; it borrows this
interpreter's torch through a .pth file instead of downloading one), then trains each method on the same
data, initial weights, seeds and settings with earlyreadout's code (here) and with SpuCo's
(`benchmarks/spuco_peer.py`, run in that environment). Each run selects its epoch on validation worst-group
accuracy; both codes' selected models are scored by `earlyreadout.metrics`. Writes
`benchmarks/results/spuco_side_by_side.json`: mean ± std per method per code, the difference against twice
its standard error, the glue, the differences left, versions. Every run is appended to
`spuco_side_by_side_runs.jsonl` beside it, so an interrupted run resumes. Exit code 2, with one line, where
the peer cannot be installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import torch

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, GroupedDataset, load_splits
from earlyreadout.distributed import DistInfo
from earlyreadout.experiments.job import Job, scores
from earlyreadout.experiments.log import run_jobs
from earlyreadout.experiments.study import FRESH_SEEDS
from earlyreadout.experiments.summary import summary
from earlyreadout.metrics import evaluate_logits, mean_std
from earlyreadout.params import resolve
from earlyreadout.train.engine import build_run

SPUCO = "2.0.3"
PEER = Path(__file__).resolve().parent / "spuco_peer.py"
DATA = "colored-digits"
# the defaults: 6,000 / 1,200 / 2,400 images, 97 % of train coloured as its label
DATA_OPTIONS: dict[str, Any] = {}
SETTINGS: dict[str, Any] = {
    "epochs": 4, "batch_size": 64, "eval_batch_size": 512, "width": 16, "lr": 0.01, "momentum": 0.9,
    "weight_decay": 1e-4, "erm_epochs": 1, "jtt_upsample": 100, "spare_clusters": 4, "spare_threshold": 0.9,
    "spare_power": 2, "eiil_steps": 20_000, "eiil_lr": 0.01,
}
S = SETTINGS
# each shared method: earlyreadout's method and the settings that make it SpuCo's (None: it has none)
PAIRS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "erm": ("erm", {}),
    "groupdro": ("groupdro", {"balanced_sampling": True, "eta": 0.01}),
    "upsample": ("resample", {"balance_by": "group"}),
    "downsample": None,
    "jtt": ("jtt", {"erm_epochs": S["erm_epochs"], "upweight": "sample",
                    "lambda_up": float(S["jtt_upsample"])}),
    "spare": ("spare", {"erm_epochs": S["erm_epochs"], "clusters": S["spare_clusters"],
                        "high_power": float(S["spare_power"]), "silhouette_threshold": S["spare_threshold"]}),
    "eiil": ("eiil", {"erm_epochs": S["erm_epochs"], "steps": S["eiil_steps"], "assign_lr": S["eiil_lr"],
                      "eta": 0.01, "balanced_sampling": True}),
}
OPTIMIZER = {"optimizer": "sgd", "lr": S["lr"], "momentum": S["momentum"], "weight_decay": S["weight_decay"]}
TRAIN = {"epochs": S["epochs"], "batch_size": S["batch_size"], "eval_batch_size": S["eval_batch_size"]}
MODEL = {"name": "small-cnn", "width": S["width"]}
GLUE = [
    (f"a throwaway venv from this interpreter's base Python, `pip install spuco=={SPUCO}` into it; a .pth "
     "file puts this environment's site-packages (torch, numpy, scikit-learn, transformers) on its path, so "
     "pip adds only what is missing (wilds, umap-learn, grad-cam, ogb, ...) and downloads no torch"),
    ("a tensor Dataset giving SpuCo (image, label) items and the attributes its classes read: labels, "
     "spurious, group_partition keyed (label, attribute), group_weights, num_classes"),
    "SpuCo's DataLoaders rebuilt with num_workers=0 (it hard-codes 4 worker processes; one process here)",
    ("the peer imports earlyreadout's SmallCNN class (the architecture only) and loads the initial weights "
     "earlyreadout's engine draws for the seed; SpuCo's set_seed(seed) seeds everything else"),
    ("JTT, SPARE and EIIL wired as SpuCo's quickstart scripts do (a Trainer for the first stage, "
     "JTTInference / SpareInference / EIIL, then CustomSampleERM / SpareTrain / GroupDRO); the second "
     "stage restarts from the initial weights, as earlyreadout's does"),
    ("each code selects its epoch by its own validation worst-group accuracy (SpuCo: its Evaluator); the "
     "selected models' logits are scored by earlyreadout.metrics for both codes"),
]
DIFFERENCES = [
    "batch order and every random draw: each code draws from its own RNG streams, seeded alike",
    ("upsample: SpuCo repeats every group to the largest group's size (an epoch of 4 x 2,918 examples, "
     "about twice the train set) and shuffles; earlyreadout's resample draws a train-set-sized epoch with "
     "replacement, group-balanced in expectation"),
    ("jtt: SpuCo's epoch is the train set plus 99 more copies of the error set (several times the train "
     "set); earlyreadout's upweight=sample draws a train-set-sized epoch with error examples 100 times as "
     "likely; SpuCo's quickstart also keeps training the first-stage model instead of restarting"),
    ("eiil: SpuCo's GroupDRO runs on 2 groups keyed by the inferred environment alone; earlyreadout's on "
     "label x environment (4 groups), as the paper's Group DRO experiments"),
    "downsample: earlyreadout has no down-sampling method; SpuCo's row has no counterpart",
]


class PeerMissing(Exception):
    """The peer cannot be installed or found."""


def installed_spuco(python: Path) -> str | None:
    """The spuco version that `python` sees, or None."""
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('spuco'))"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def peer_python(env: Path) -> Path:
    """The Python of a virtual environment holding spuco==SPUCO: `env`, created and installed where needed."""
    python = env / "bin" / "python"
    if installed_spuco(python) == SPUCO:
        return python
    try:
        if not python.exists():
            venv.create(env, with_pip=True)
        where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        site = subprocess.run([str(python), "-c", where], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise PeerMissing(f"cannot create the peer's virtual environment {env}: {e}") from None
    (Path(site) / "earlyreadout_torch.pth").write_text(str(Path(torch.__file__).resolve().parents[1]) + "\n")
    print(f"installing spuco=={SPUCO} into {env}", flush=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"spuco=={SPUCO}"],
                          capture_output=True, text=True, check=False)
    if installed_spuco(python) != SPUCO:
        last = (done.stderr.strip().splitlines() or ["pip printed nothing"])[-1]
        raise PeerMissing(f"cannot install the peer: pip install spuco=={SPUCO} into {env} failed: {last}")
    return python


def data_splits() -> dict[str, GroupedDataset]:
    """The benchmark's splits at its default options."""
    options, _ = resolve(DATASETS.get(DATA).options, DATA_OPTIONS, DATA)
    return load_splits(DATA, options)


def earlyreadout_jobs(seeds: list[int]) -> list[Job]:
    """One training job per earlyreadout method and seed."""
    return [Job(key=f"earlyreadout/{name}/seed{seed}", data=DATA, method=pair[0], hp={**OPTIMIZER, **pair[1]},
                seed=seed, data_options=DATA_OPTIONS, train=TRAIN, model=MODEL)
            for name, pair in PAIRS.items() if pair is not None for seed in seeds]


def initial_weights(seed: int, splits: dict[str, GroupedDataset], work: Path) -> dict[str, torch.Tensor]:
    """The network earlyreadout's engine builds for `seed` before training (any method: it is built first)."""
    cfg = build_config({"method": "erm", "data": {"name": DATA, **DATA_OPTIONS}, "model": MODEL,
                        "train": {**TRAIN, "seed": seed, "device": "cpu"}, "out": str(work / "init")})
    method, _, _ = build_run(cfg, torch.device("cpu"), DistInfo(), splits)
    return method.network.state_dict()


def run_peer(python: Path, runs: list[tuple[str, int]], seeds: list[int], splits: dict[str, GroupedDataset]
             ) -> tuple[Path, subprocess.CompletedProcess]:
    """Export the data and initial weights, train `runs` with SpuCo's code in the peer; (its work folder,
    named by a hash of the settings so an interrupted run resumes, and how the peer ended)."""
    plan = {**SETTINGS, "runs": runs}
    tag = hashlib.sha256(json.dumps({**SETTINGS, "data": DATA, **DATA_OPTIONS}, sort_keys=True).encode()
                         ).hexdigest()[:12]
    work = Path(tempfile.gettempdir()) / f"earlyreadout-spuco-work-{tag}"
    work.mkdir(exist_ok=True)
    (work / "plan.json").write_text(json.dumps(plan))
    train = splits["train"]
    data = {name: {"x": s.tensors(), "y": s.y, "a": s.a} for name, s in splits.items()}
    torch.save({**data, "n_classes": train.n_classes, "in_channels": train.tensors().shape[1]},
               work / "data.pt")
    for seed in seeds:
        torch.save(initial_weights(seed, splits, work), work / f"init-seed{seed}.pt")
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run([str(python), str(PEER), str(work)], env=env, check=False)
    return work, done


def peer_row(work: Path, method: str, seed: int, splits: dict[str, GroupedDataset]) -> dict[str, Any]:
    """A log row for one SpuCo run: its selected model's logits scored by earlyreadout.metrics, the peer's
    library versions."""
    out = torch.load(work / "out" / f"{method}-seed{seed}.pt", weights_only=True)
    versions = json.loads((work / "versions.json").read_text())
    metrics = {split: evaluate_logits(out[split], splits[split]) for split in ("val", "test")}
    return {"key": f"spuco/{method}/seed{seed}", "method": method, "seed": seed, **scores(metrics),
            **{k: out[k] for k in ("best_epoch", "train_time_s", "steps_per_epoch", "spuco_val_worst_group",
                                   "info")}, "peer_versions": versions}


def compare(rows: dict[str, dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Per method: each code's summary over seeds and, where both ran, the difference of mean test worst-group
    accuracy against twice its standard error (within seed noise when not larger), and the same for the
    differences per seed, which share the initial weights."""
    table: dict[str, Any] = {}
    for name, pair in PAIRS.items():
        entry: dict[str, Any] = {"earlyreadout_method": None if pair is None else pair[0]}
        for code in ("earlyreadout", "spuco"):
            runs = [rows[k] for k in (f"{code}/{name}/seed{s}" for s in seeds) if k in rows]
            if len(runs) == len(seeds):
                entry[code] = {**summary(runs), "best_epochs": [r["best_epoch"] for r in runs]}
        entry["spuco_inferred"] = [rows[f"spuco/{name}/seed{s}"]["info"] for s in seeds
                                   if rows.get(f"spuco/{name}/seed{s}", {}).get("info")]
        if "earlyreadout" in entry and "spuco" in entry:
            ours, theirs = entry["earlyreadout"]["test_worst_group"], entry["spuco"]["test_worst_group"]
            se = math.sqrt((ours["std"] ** 2 + theirs["std"] ** 2) / len(seeds))
            entry["difference"] = ours["mean"] - theirs["mean"]
            entry["two_standard_errors"] = 2 * se
            entry["within_seed_noise"] = abs(entry["difference"]) <= 2 * se
            paired = mean_std([o - t for o, t in zip(ours["values"], theirs["values"])])
            entry["paired_differences"] = paired["values"]
            entry["paired_two_standard_errors"] = 2 * paired["std"] / math.sqrt(len(seeds))
            entry["paired_within_seed_noise"] = abs(paired["mean"]) <= entry["paired_two_standard_errors"]
        table[name] = entry
    spuco_rows = [r for k, r in rows.items() if k.startswith("spuco/")]
    gap = max((abs(r["spuco_val_worst_group"] - r["val_worst_group"]) for r in spuco_rows), default=None)
    return {"methods": table, "spuco_selection_vs_earlyreadout_metrics_max_gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = Path(tempfile.gettempdir()) / f"earlyreadout-spuco-{SPUCO}"
    parser.add_argument("--env", type=Path, default=env,
                        help="the peer's throwaway virtual environment (default: %(default)s)")
    parser.add_argument("--seeds", default=",".join(map(str, FRESH_SEEDS)), help="default: %(default)s")
    parser.add_argument("--results", type=Path, default=RESULTS / "spuco_side_by_side.json",
                        help="result file; its runs log lies beside it (default: %(default)s)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    log = args.results.with_name(args.results.stem + "_runs.jsonl")
    torch.set_num_threads(1)
    try:
        python = peer_python(args.env)
    except PeerMissing as e:
        print(f"spuco_side_by_side: {e}", file=sys.stderr)
        sys.exit(2)
    rows = run_jobs(earlyreadout_jobs(seeds), log, workers=1)
    todo = [(m, s) for m in PAIRS for s in seeds if f"spuco/{m}/seed{s}" not in rows]
    if todo:
        splits = data_splits()
        work, done = run_peer(python, todo, seeds, splits)
        for method, seed in todo:
            if (work / "out" / f"{method}-seed{seed}.pt").exists():
                row = peer_row(work, method, seed, splits)
                rows[row["key"]] = row
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
        if done.returncode != 0:
            raise SystemExit(f"spuco_side_by_side: the peer stopped with exit code {done.returncode}; "
                             "rerun to resume")
    versions = next(r["peer_versions"] for k, r in rows.items() if k.startswith("spuco/"))
    spec = {"data": DATA, "data_options": DATA_OPTIONS or "defaults (full size)", "model": MODEL,
            "settings": SETTINGS, "seeds": seeds, "pairs": PAIRS, "spuco": SPUCO, "peer_versions": versions,
            "glue": GLUE, "differences": DIFFERENCES}
    result = compare(rows, seeds)
    write_result(args.results, "spuco_side_by_side", spec, result)
    print(json.dumps({m: {c: e[c]["test_worst_group"]["mean"] for c in ("earlyreadout", "spuco") if c in e}
                      for m, e in result["methods"].items()}, indent=1))


if __name__ == "__main__":
    main()
