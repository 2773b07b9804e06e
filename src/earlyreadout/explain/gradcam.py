"""What a model looks at: Grad-CAM for convolutional layers, gradient x input for token embeddings.

Both work on any model through a `FeatureTap` on a layer addressed by module path, and leave no hook
behind. Grad-CAM (Selvaraju et al., 2017) weights each channel of a layer's feature map by the spatial
mean of the gradient of the explained logit, sums the channels, keeps the positive part and upsamples
to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.models.layers import FeatureTap, unwrap

Region = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of the input


def _explained_grad(model: nn.Module, x: torch.Tensor, layer: str,
                    target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(activation of `layer`, gradient of the explained logit w.r.t. it, logits) in eval mode.

    The explained logit is `target`'s per example, or the predicted class's when `target` is None.
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), FeatureTap(model, [layer], differentiable=True) as tap:
            logits = model(x)
            activation = tap.features.get(layer)
            if activation is None or not activation.requires_grad:
                raise UserError(f"layer {layer!r} did not produce a differentiable output in the forward pass; "
                                "choose a layer that the model's prediction depends on")
            explained = logits.argmax(1) if target is None else target.to(logits.device).long()
            score = logits.gather(1, explained[:, None]).sum()
            (grad,) = torch.autograd.grad(score, activation, allow_unused=True)
    finally:
        model.train(was_training)
    if grad is None:
        grad = torch.zeros_like(activation)
    return activation.detach(), grad.detach(), logits.detach()


def gradcam(model: nn.Module, x: torch.Tensor, layer: str,
            target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Grad-CAM maps of shape (N, H, W) at the input's size, each scaled to max 1 (or all 0), logits)."""
    activation, grad, logits = _explained_grad(model, x, layer, target)
    if activation.dim() != 4:
        raise UserError(f"Grad-CAM needs a convolutional layer with (N, C, H, W) output; {layer!r} gives shape "
                        f"{tuple(activation.shape)}; pass --layer with one of the model's conv stages")
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(1, keepdim=True)).float()
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam)), logits


def token_attributions(model: nn.Module, ids: torch.Tensor, layer: str, pad_id: int | None = None,
                       target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient x input per token, shape (N, L), 0 at padding, logits) on the (N, L, D) output of `layer`."""
    activation, grad, logits = _explained_grad(model, ids, layer, target)
    if activation.dim() != 3 or activation.shape[:2] != ids.shape[:2]:
        raise UserError(f"token attributions need a layer with one vector per token, shape (N, L, D); {layer!r} "
                        f"gives {tuple(activation.shape)} for inputs {tuple(ids.shape)}; use the embedding layer")
    attr = (grad * activation).sum(-1).float()
    if pad_id is not None:
        attr = attr.masked_fill(ids == pad_id, 0.0)
    return attr, logits


def region_mass(maps: torch.Tensor, region: Region) -> torch.Tensor:
    """Fraction of each (H, W) map's total mass inside `region` (rows r0:r1, columns c0:c1); NaN if empty."""
    r0, r1, c0, c1 = region
    total = maps.sum((-2, -1)).double()
    inside = maps[..., r0:r1, c0:c1].sum((-2, -1)).double()
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))


def token_mass(attr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of each row's absolute attribution on the tokens where `mask` is True; NaN if all zero."""
    mag = attr.abs().double()
    total = mag.sum(-1)
    inside = (mag * mask.double()).sum(-1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))
