"""SpuCo's side of `benchmarks/spuco_side_by_side.py`, run by it in the throwaway environment holding spuco.

`python spuco_peer.py WORK` reads `WORK/plan.json` (methods, seeds, settings), `WORK/data.pt` (the exported
train / val / test tensors) and `WORK/init-seed{S}.pt` (the network's initial weights for seed S, drawn by
earlyreadout), trains each (method, seed) with SpuCo's own trainers and group-inference classes, selecting the
epoch by SpuCo's validation worst-group accuracy, and saves the selected model's val and test logits to
`WORK/out/{method}-seed{S}.pt` (pairs already saved are skipped). Scoring is left to the caller, so both codes
are scored by `earlyreadout.metrics`. The glue: a tensor Dataset with the attributes SpuCo's classes read,
SpuCo's DataLoaders kept in this process (it asks for 4 worker processes), and the two-stage recipes of
SpuCo's quickstart scripts (Trainer for the first stage, then inference, then the robust trainer).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import spuco.evaluate.evaluator
import spuco.utils.misc
import spuco.utils.trainer
import torch
from spuco.datasets import GroupLabeledDatasetWrapper
from spuco.evaluate import Evaluator
from spuco.group_inference import EIIL, JTTInference, SpareInference
from spuco.robust_train import (
    ERM,
    BaseRobustTrain,
    CustomSampleERM,
    DownSampleERM,
    GroupDRO,
    SpareTrain,
    UpSampleERM,
)
from spuco.utils import Trainer, set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset

from earlyreadout.models.cnn import SmallCNN


class TensorSplit(Dataset):
    """One exported split as SpuCo's datasets present themselves: `(image, label)` items, `labels`,
    `spurious`, the true `group_partition` keyed `(label, attribute)`, `group_weights` and `num_classes`."""

    def __init__(self, split: dict[str, torch.Tensor], n_classes: int):
        self.x = split["x"]
        self.labels = split["y"].tolist()
        self.spurious = split["a"].tolist()
        self.num_classes = n_classes
        self.group_partition: dict[tuple[int, int], list[int]] = {}
        for i, key in enumerate(zip(self.labels, self.spurious)):
            self.group_partition.setdefault(key, []).append(i)
        self.group_weights = {k: len(v) / len(self.labels) for k, v in self.group_partition.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.labels[i]


def in_process_loader(*args: Any, **kwargs: Any) -> DataLoader:
    """SpuCo's DataLoader without the 4 worker processes it asks for (one process, one thread here)."""
    return DataLoader(*args, **{**kwargs, "num_workers": 0, "pin_memory": False})


class Recipe:
    """What one (method, seed) run needs: the data, the settings, a fresh network from the initial weights."""

    def __init__(self, data: dict[str, Any], plan: dict[str, Any], init: dict[str, torch.Tensor]):
        self.train = TensorSplit(data["train"], data["n_classes"])
        self.val = TensorSplit(data["val"], data["n_classes"])
        self.plan, self.init, self.info = plan, init, {}
        self.model = SmallCNN(data["in_channels"], data["n_classes"], plan["width"])
        self.model.load_state_dict(init)

    def optimizer(self) -> torch.optim.Optimizer:
        """SGD with the settings both codes share."""
        p = self.plan
        return torch.optim.SGD(self.model.parameters(), lr=p["lr"], momentum=p["momentum"],
                               weight_decay=p["weight_decay"])

    def common(self) -> dict[str, Any]:
        """The arguments every SpuCo robust trainer takes, its validation evaluator included."""
        evaluator = Evaluator(testset=self.val, group_partition=self.val.group_partition,
                              group_weights=self.val.group_weights, batch_size=self.plan["eval_batch_size"],
                              model=self.model)
        return {"model": self.model, "batch_size": self.plan["batch_size"], "optimizer": self.optimizer(),
                "num_epochs": self.plan["epochs"], "val_evaluator": evaluator}

    def stage1_logits(self) -> torch.Tensor:
        """SpuCo's quickstart first stage: a Trainer for `erm_epochs`, its outputs on train; then the network
        restarts from the initial weights (the quickstart's JTT keeps training this model; SPARE's and EIIL's
        draw a new one)."""
        trainer = Trainer(trainset=self.train, model=self.model, batch_size=self.plan["batch_size"],
                          optimizer=self.optimizer())
        trainer.train(num_epochs=self.plan["erm_epochs"])
        logits = trainer.get_trainset_outputs()
        self.model.load_state_dict(self.init)
        return logits


def sizes(partition: dict[tuple[int, int], list[int]]) -> dict[str, int]:
    """A group partition's sizes, keyed "label,group"."""
    return {f"{int(k[0])},{int(k[1])}": len(v) for k, v in sorted(partition.items())}


def erm(r: Recipe) -> BaseRobustTrain:
    """Plain ERM: the harness check."""
    return ERM(trainset=r.train, **r.common())


def groupdro(r: Recipe) -> BaseRobustTrain:
    """GroupDRO on the true groups (its batches are always group-balanced; group_weight_lr fixed at 0.01)."""
    return GroupDRO(trainset=GroupLabeledDatasetWrapper(r.train, r.train.group_partition), **r.common())


def upsample(r: Recipe) -> BaseRobustTrain:
    """Every group repeated to the size of the largest, shuffled each epoch."""
    return UpSampleERM(trainset=r.train, group_partition=r.train.group_partition, **r.common())


def downsample(r: Recipe) -> BaseRobustTrain:
    """Every group cut to the size of the smallest, once."""
    return DownSampleERM(trainset=r.train, group_partition=r.train.group_partition, **r.common())


def jtt(r: Recipe) -> BaseRobustTrain:
    """JTTInference on the first stage's errors, then CustomSampleERM on the error set repeated
    `jtt_upsample` times (quickstart/waterbirds/waterbirds_jtt.py)."""
    predictions = r.stage1_logits().argmax(1).tolist()
    partition = JTTInference(predictions=predictions, class_labels=r.train.labels).infer_groups()
    indices = partition[(0, 0)] + partition[(0, 1)] * r.plan["jtt_upsample"]
    r.info = {"error_set": len(partition[(0, 1)]), "epoch_examples": len(indices)}
    return CustomSampleERM(trainset=r.train, indices=indices, **r.common())


def spare(r: Recipe) -> BaseRobustTrain:
    """SpareInference on the first stage's softmax outputs, then SpareTrain (quickstart/waterbirds/...)."""
    p = r.plan
    inference = SpareInference(logits=r.stage1_logits().softmax(1), class_labels=r.train.labels,
                               num_clusters=p["spare_clusters"], silhoutte_threshold=p["spare_threshold"],
                               high_sampling_power=p["spare_power"])
    partition = inference.infer_groups()
    r.info = {"clusters": sizes(partition),
              "sampling_powers": inference.sampling_powers,
              "class_order": list(inference.class_partition.keys())}
    return SpareTrain(trainset=r.train, group_partition=partition, sampling_powers=inference.sampling_powers,
                      **r.common())


def eiil(r: Recipe) -> BaseRobustTrain:
    """EIIL's environments from the first stage's logits, then GroupDRO on SpuCo's partition, which keys on
    the environment alone (quickstart/waterbirds/waterbirds_eiil.py)."""
    partition = EIIL(logits=r.stage1_logits(), class_labels=r.train.labels, num_steps=r.plan["eiil_steps"],
                     lr=r.plan["eiil_lr"]).infer_groups()
    r.info = {"environments": sizes(partition)}
    return GroupDRO(trainset=GroupLabeledDatasetWrapper(r.train, partition), **r.common())


RECIPES: dict[str, Callable[[Recipe], BaseRobustTrain]] = {
    "erm": erm, "groupdro": groupdro, "upsample": upsample, "downsample": downsample, "jtt": jtt,
    "spare": spare, "eiil": eiil,
}


def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's logits on `x` in eval mode."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(b) for b in x.split(batch_size)])


def run(work: Path, data: dict[str, Any], plan: dict[str, Any], method: str, seed: int) -> None:
    """Train one (method, seed) and save the selected model's logits and what SpuCo reported."""
    set_seed(seed)
    random.seed(seed)
    recipe = Recipe(data, plan, torch.load(work / f"init-seed{seed}.pt", weights_only=True))
    start = time.perf_counter()
    trainer = RECIPES[method](recipe)
    trainer.train()
    elapsed = time.perf_counter() - start
    best = trainer.best_model
    out = {"val": logits_of(best, data["val"]["x"], plan["eval_batch_size"]),
           "test": logits_of(best, data["test"]["x"], plan["eval_batch_size"]),
           "best_epoch": trainer.best_epoch, "spuco_val_worst_group": trainer.best_wg_acc / 100,
           "train_time_s": elapsed, "steps_per_epoch": len(trainer.trainer.trainloader),
           "info": recipe.info}
    torch.save(out, work / "out" / f"{method}-seed{seed}.pt")
    print(f"spuco {method} seed {seed}: val worst-group {out['spuco_val_worst_group']:.3f} "
          f"({elapsed:.0f} s)", flush=True)


def main() -> None:
    work = Path(sys.argv[1])
    torch.set_num_threads(1)
    for module in (spuco.utils.trainer, spuco.utils.misc, spuco.evaluate.evaluator):
        module.DataLoader = in_process_loader
    plan = json.loads((work / "plan.json").read_text())
    data = torch.load(work / "data.pt", weights_only=True)
    (work / "out").mkdir(exist_ok=True)
    (work / "versions.json").write_text(json.dumps(
        {p: version(p) for p in ("spuco", "torch", "numpy", "scikit-learn")}))
    for method, seed in plan["runs"]:
        if not (work / "out" / f"{method}-seed{seed}.pt").exists():
            run(work, data, plan, method, seed)


if __name__ == "__main__":
    main()
