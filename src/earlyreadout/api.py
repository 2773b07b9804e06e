"""The public API for a model trained elsewhere: data from tensors, a torch `Dataset` or an image folder with a
CSV; the model from your code and checkpoint; an early-readout diagnosis; a last-layer fix in one call, with the
command line's defaults (every default here is the declared one the CLI reads).

    import earlyreadout as er
    data = er.csv_splits("data/metadata.csv", image_size=64)
    model = er.load_model("my_models.py:Net", "net.pt", data)
    print(er.diagnose(model, data)["verdict"]["line"])
    fixed, metrics = er.fix_last_layer(model, data)          # readout-dfr: no group labels
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from earlyreadout.compare import compare
from earlyreadout.config import TRAIN_OPTIONS, TrainSettings
from earlyreadout.data import DATASETS, GroupedDataset
from earlyreadout.data.wrapped import from_tensors, from_torch
from earlyreadout.distributed import DistInfo
from earlyreadout.errors import UserError
from earlyreadout.explain.diagnose import DIAGNOSE_OPTIONS, diagnose_model
from earlyreadout.methods import METHODS
from earlyreadout.metrics import evaluate_logits
from earlyreadout.models import MODELS, build_model, canonical_model
from earlyreadout.models.inference import collect_logits
from earlyreadout.models.stages import ModelLayers
from earlyreadout.models.weights import load_trained_weights, read_trained
from earlyreadout.params import checked
from earlyreadout.train.engine import attach_method, eval_batch_size, refit_after_selection
from earlyreadout.train.imported import check_forward
from earlyreadout.train.retrain import last_layer_methods

Splits = dict[str, GroupedDataset]


def quiet(_message: str) -> None:
    """A log function that prints nothing."""


def csv_splits(path: str | Path, **options: Any) -> Splits:
    """Train / val / test splits of the metadata CSV at `path` (`id,filename,split,y,a` by default; image paths
    relative to it; attributes may be blank, e.g. on all of train). `options` are the `csv` dataset's
    (`earlyreadout list -v`): image_size, mean, std, channels, label_column, attribute_column, modality, ..."""
    return DATASETS.get("csv")(**checked(DATASETS.get("csv").options, {"root": str(path), **options}, "csv")).splits()


def tensor_splits(train: tuple, val: tuple, test: tuple, class_names: list[str] | None = None,
                  attribute_names: list[str] | None = None) -> Splits:
    """Splits from `(x, y)` or `(x, y, a)` tensors for `train`, `val` and `test` (`a` None, or -1 on a row,
    where unknown); `class_names` and `attribute_names` name the codes (default: the codes)."""
    return from_tensors({"train": train, "val": val, "test": test}, class_names, attribute_names)


def torch_splits(train: Any, val: Any, test: Any, class_names: list[str] | None = None,
                 attribute_names: list[str] | None = None) -> Splits:
    """Splits from the torch `Dataset`s `train`, `val` and `test`, whose items are `(x, y)`, `(x, y, a)` or dicts
    with `x`/`image`, `y`/`label` and optionally `a`/`attribute` keys; `class_names` and `attribute_names`
    name the codes."""
    return from_torch({"train": train, "val": val, "test": test}, class_names, attribute_names)


def load_model(model: str | nn.Module, checkpoint: str | Path | None, splits: Splits, pickled_module: bool = False,
               **model_options: Any) -> nn.Module:
    """Your trained model for `splits`, in eval mode: `model` is an `nn.Module` or `FILE.py:CALLABLE`, a
    torchvision model name or a built-in name (built with `model_options`); `checkpoint` (a state dict file; a
    pickled module only with `pickled_module`) is loaded into it when given. A checkpoint that does not fit, or
    a model that cannot take the inputs, raises a UserError saying why."""
    train = splits["train"]
    if isinstance(model, nn.Module):
        network = model
    else:
        name, given = canonical_model(model, model_options)
        network = build_model(name, checked(MODELS.get(name).options, given, f"model {name!r}"), train.info,
                              train.n_classes)
    if checkpoint is not None:
        load_trained_weights(network, read_trained(checkpoint, pickled_module), str(checkpoint))
    check_forward(network, train, next(network.parameters()).device)
    return network.eval()


def evaluate(model: nn.Module, split: GroupedDataset, batch_size: int = 256) -> dict[str, Any]:
    """Worst-group, adjusted, average and worst-class accuracy, per-group accuracy and ECE of `model` on `split`,
    in batches of `batch_size` (`groups_by` says whether the groups are (label, attribute) or the classes)."""
    device = next(model.parameters()).device
    return evaluate_logits(collect_logits(model, model, split, batch_size, device), split)


def diagnose(model: nn.Module, splits: Splits, log: Callable[[str], None] = quiet, **options: Any) -> dict[str, Any]:
    """Early readouts fitted on the train split of `splits` at `model`'s frozen layers (default: its stages), and what
    their confident errors flag (`earlyreadout diagnose`'s summary); `options` are that command's (layers,
    epochs, head, folds, lr, ...); `log` receives its progress lines."""
    opts = checked(DIAGNOSE_OPTIONS, options, "diagnose")
    opts.pop("device")
    known = ModelLayers.of(model)
    layers = [known.resolve(layer, "layers") for layer in opts.pop("layers") or []] or list(known.stages)
    summary, _rows = diagnose_model(model.eval(), splits, layers, **opts, log=log)
    return summary


def fix_last_layer(model: nn.Module, splits: Splits, method: str = "readout-dfr", seed: int = TRAIN_OPTIONS["seed"].default,
                   **settings: Any) -> tuple[nn.Module, dict[str, Any]]:
    """(a copy of `model` with its classifier refitted on `splits` by last-layer `method`, its metrics on val and
    test and what the refit chose): readout-dfr reads no group labels, dfr / afr read val's. `settings` are the
    method's (`earlyreadout list -v`), at their declared defaults otherwise, as `earlyreadout retrain` runs
    them; `seed` seeds the refit's subsamples."""
    if method not in last_layer_methods():
        METHODS.get(method)  # an unknown name: the error lists the methods
        raise UserError(f"{method!r} is not a last-layer method; choose one of {', '.join(last_layer_methods())}")
    hp = checked(METHODS.get(method).hparams, settings, f"method {method!r}")
    network = copy.deepcopy(model)
    device = next(network.parameters()).device
    refit, _ = attach_method(method, hp, network, splits, TrainSettings(**checked(TRAIN_OPTIONS, {"seed": seed}, "train")), device, DistInfo(0, 1, 0), None,
                             ModelLayers.of(network))
    info = refit_after_selection(refit)
    size = eval_batch_size(None, splits["train"].info)
    fixed = refit.network.eval()
    return fixed, {"val": evaluate(fixed, splits["val"], size), "test": evaluate(fixed, splits["test"], size),
                   "last_layer": info}


def train_and_fix(data: str, out: str | Path, model: str | None = None, epochs: int = TRAIN_OPTIONS["epochs"].default,
                  seed: int = TRAIN_OPTIONS["seed"].default, device: str = TRAIN_OPTIONS["device"].default,
                  settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train `model` (default: the dataset's) with readout reweighting for `epochs` from `seed` on `device`, then
    refit its last layer with readout-dfr: no group labels anywhere (`compare --methods
    readout-reweight+readout-dfr`, one seed). `data` is a dataset name or a metadata CSV;
    `settings` are dotted config keys (`{"data.image_size": 32}`). Runs are written under `out`; returns the fixed
    run's metrics."""
    values: dict[str, Any] = {"train.epochs": epochs, "train.device": device, **(settings or {})}
    if model is not None:
        values["model.name"] = model
    if Path(data).suffix == ".csv" or Path(data).is_file():
        values.update({"data.name": "csv", "data.root": str(Path(data).resolve())})
    else:
        values["data.name"] = data
    results = compare(["readout-reweight+readout-dfr"], out, values=values, first_seed=seed)
    return results[0]


def describe(splits: Mapping[str, GroupedDataset]) -> str:
    """One line per split of `splits`: its size and the examples per group."""
    return "\n".join(split.describe() for split in splits.values())
