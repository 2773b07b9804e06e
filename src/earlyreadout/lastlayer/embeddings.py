"""What last-layer retraining reads from a trained model: the classifier's input, the logits and pooled
early-layer features of every example of a split, computed in one pass and cached beside the run."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.errors import UserError
from earlyreadout.io import load_checkpoint, save_checkpoint
from earlyreadout.models.inference import collect_logits
from earlyreadout.models.layers import FeatureTap, call_model, find_module, resolve_path, unwrap
from earlyreadout.readout.heads import pool


@dataclass
class Embeddings:
    """One split seen by a trained model: `z` the classifier's input (N, D), its `logits` (N, C), pooled
    early-layer features by module path, the labels `y` and the group labels `g` (None without attributes)."""

    z: torch.Tensor
    logits: torch.Tensor
    early: dict[str, torch.Tensor]
    y: torch.Tensor
    g: torch.Tensor | None


def classifier_path(model: nn.Module, n_classes: int, given: str = "auto") -> str:
    """The module path of the model's classifier: `given`, or with `auto` the last `nn.Linear` with
    `n_classes` outputs (`fc` of the CNNs and ResNets, `classifier` of Hugging Face models)."""
    model = unwrap(model)
    if given != "auto":
        module = find_module(model, given)
        if not isinstance(module, nn.Linear):
            raise UserError(f"classifier {given!r} is a {type(module).__name__}, not an nn.Linear; give the path of "
                            "the model's last linear layer")
        return resolve_path(model, given)
    found = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == n_classes]
    if not found:
        raise UserError(f"{type(model).__name__} has no nn.Linear layer with {n_classes} outputs to retrain; give "
                        "its classifier with method.classifier=PATH (see `earlyreadout list -v` for layer names)")
    return found[-1]


def set_classifier(model: nn.Module, path: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Replace the weights of the classifier at `path` (in place, keeping its device and dtype)."""
    layer = find_module(model, path)
    with torch.no_grad():
        layer.weight.copy_(weight.to(layer.weight))
        if layer.bias is None:
            raise UserError(f"classifier {path!r} has no bias; retraining needs one")
        layer.bias.copy_(bias.to(layer.bias))


def embed(model: nn.Module, dataset: GroupedDataset, classifier: str, early_layers: list[str] = (),
          batch_size: int = 512, device: torch.device | str = "cpu", token_pool: str = "cls") -> Embeddings:
    """Every example of `dataset` through `model` (eval mode, no grad), in dataset order."""
    net = unwrap(model)
    layers = list(early_layers)
    sizes: list[int] = []
    with FeatureTap(net, layers, inputs_of=[classifier]) as tap:
        def outputs(x: Any) -> torch.Tensor:
            logits = call_model(net, x).float()
            parts = [tap.inputs[classifier].flatten(1).float(), logits]
            parts += [pool(tap.features[p], token_pool).flatten(1).float() for p in layers]
            sizes[:] = [p.shape[1] for p in parts]
            return torch.cat(parts, 1)

        flat = collect_logits(outputs, net, dataset, batch_size, device, desc=f"embed {dataset.split}", progress=False)
    pieces = flat.split(sizes, dim=1)
    return Embeddings(z=pieces[0].contiguous(), logits=pieces[1].contiguous(),
                      early={p: f.contiguous() for p, f in zip(layers, pieces[2:])}, y=dataset.y.clone(),
                      g=dataset.g.clone() if dataset.has_attributes else None)


def state_fingerprint(model: nn.Module) -> str:
    """A short hash of the model's weights and buffers: embeddings are cached per trained model."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}, buffer)
    return hashlib.sha1(buffer.getvalue()).hexdigest()[:16]


def cached_embed(cache_dir: Path | None, model: nn.Module, dataset: GroupedDataset, classifier: str,
                 early_layers: list[str] = (), **kwargs: Any) -> Embeddings:
    """`embed`, read from `cache_dir` when this model, split, classifier and layers were embedded before."""
    if cache_dir is None:
        return embed(model, dataset, classifier, early_layers, **kwargs)
    key = hashlib.sha1(repr((state_fingerprint(model), dataset.name, dataset.split, len(dataset), classifier,
                             list(early_layers), kwargs.get("token_pool", "cls"))).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{dataset.split}-{key}.pt"
    if path.is_file():
        stored = load_checkpoint(path, advice="delete it; it is recomputed", what="embedding cache")
        return Embeddings(z=stored["z"], logits=stored["logits"], early=stored["early"], y=stored["y"], g=stored["g"])
    result = embed(model, dataset, classifier, early_layers, **kwargs)
    save_checkpoint({"z": result.z, "logits": result.logits, "early": result.early, "y": result.y, "g": result.g},
                    path)
    return result
