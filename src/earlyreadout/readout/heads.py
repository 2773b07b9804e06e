"""Early readouts: small heads trained on detached intermediate features of any model, via hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.models.layers import FeatureTap, call_model, unwrap
from earlyreadout.params import Param

if TYPE_CHECKING:
    from typing_extensions import Self

HEAD_FAMILIES = ("linear", "mlp", "conv")
TOKEN_POOLS = ("cls", "mean")

# The readout-head settings of the methods that fit readouts on a student or on the network itself.
READOUT_HEAD_PARAMS: dict[str, Param] = {
    "readout_head": Param("linear", "readout head family", choices=HEAD_FAMILIES),
    "readout_depth": Param(2, "conv blocks of a conv head", low=0),
    "readout_width": Param(128, "channels / hidden units of a conv or mlp head", low=1),
    "readout_token_pool": Param("cls", "how a readout on token sequences pools them: cls (position 0) or mean",
                                choices=TOKEN_POOLS),
    "readout_lr": Param(1e-2, "Adam learning rate of the readout heads", low=0.0, open_low=True),
}


def pool(feature: torch.Tensor, token_pool: str = "cls") -> torch.Tensor:
    """A vector per example: global-average-pool 4-D maps (N, C, H, W); CLS (position 0) or mean of 3-D
    token sequences (N, L, D); 2-D features (N, D) pass through."""
    if token_pool not in TOKEN_POOLS:
        raise UserError(f"unknown token pooling {token_pool!r}; choose one of {', '.join(TOKEN_POOLS)}")
    if feature.dim() == 4:
        return feature.mean((2, 3))
    if feature.dim() == 3:
        return feature[:, 0] if token_pool == "cls" else feature.mean(1)
    if feature.dim() == 2:
        return feature
    raise ValueError(f"cannot pool a feature of shape {tuple(feature.shape)}")


class ResidualConvBlock(nn.Module):
    """3x3 conv-BN-ReLU, stride 1, with an identity skip when `skip`."""

    def __init__(self, c_in: int, c_out: int, skip: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        return out + x if self.skip else out


class ReadoutHead(nn.Module):
    """One readout decoder: `linear` (pool + Linear), `mlp` (pool + hidden layer), or `conv`
    (`depth` residual conv blocks of `width` channels, the first without skip, then pool + Linear)."""

    def __init__(self, family: str, feature_shape: tuple[int, ...], n_classes: int, depth: int = 2,
                 width: int = 128, token_pool: str = "cls"):
        super().__init__()
        if family not in HEAD_FAMILIES:
            raise UserError(f"unknown readout head {family!r}; choose one of {', '.join(HEAD_FAMILIES)}")
        if token_pool not in TOKEN_POOLS:
            raise UserError(f"unknown token pooling {token_pool!r}; choose one of {', '.join(TOKEN_POOLS)}")
        if not 1 <= len(feature_shape) <= 3:
            raise UserError(f"cannot read out a feature of shape (N, {', '.join(map(str, feature_shape))}): "
                            "expected (N, D), token sequences (N, L, D) or feature maps (N, C, H, W)")
        self.family, self.token_pool = family, token_pool
        channels = feature_shape[0] if len(feature_shape) == 3 else feature_shape[-1]
        if family == "conv":
            if len(feature_shape) != 3:
                raise UserError(
                    f"a conv readout head needs 4-D feature maps, got features of shape (N, "
                    f"{', '.join(map(str, feature_shape))}); use head 'linear' or 'mlp' for this layer"
                )
            blocks = [ResidualConvBlock(channels if i == 0 else width, width, skip=i > 0) for i in range(depth)]
            self.body: nn.Module = nn.Sequential(*blocks)
            self.out = nn.Linear(width if depth > 0 else channels, n_classes)
        elif family == "mlp":
            self.body = nn.Identity()
            self.out = nn.Sequential(nn.Linear(channels, width), nn.ReLU(), nn.Linear(width, n_classes))
        else:
            self.body = nn.Identity()
            self.out = nn.Linear(channels, n_classes)

    def reduce(self, feature: torch.Tensor) -> torch.Tensor:
        """The parameter-free part of the head: the pooled vector for linear/mlp, the map itself for conv.

        Its output can be cached once and fed to `decode` for many epochs of head training.
        """
        return feature if self.family == "conv" else pool(feature, self.token_pool)

    def decode(self, reduced: torch.Tensor) -> torch.Tensor:
        """Logits from the output of `reduce`."""
        if self.family == "conv":
            return self.out(pool(self.body(reduced)))
        return self.out(reduced)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.decode(self.reduce(feature))

    def reset_parameters(self) -> None:
        """Re-initialise every layer of the head (a fresh readout, same shapes)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def _key(path: str) -> str:
    return path.replace(".", "/")


class EarlyReadout(nn.Module):
    """Readout heads attached to layers of a model by module path; the model is neither copied nor changed.

    After any forward pass of the model, `logits()` gives each head's prediction from the hooked feature.
    By default the feature is detached, so training the heads never changes the model; the sieve's
    forgetting step asks for `detach=False`. Shapes come from one dry forward of `example_input`.

        with EarlyReadout(model, ["layer1", "layer2"], n_classes=2, example_input=x[:2]) as ro:
            model(x); loss = ro.loss(y)
    """

    def __init__(self, model: nn.Module, layers: str | list[str], n_classes: int, example_input: Any,
                 head: str = "linear", depth: int = 2, width: int = 128, token_pool: str = "cls"):
        super().__init__()
        self.layers = list(dict.fromkeys([layers] if isinstance(layers, str) else layers))
        if not self.layers:
            raise UserError("an early readout needs at least one layer path")
        self._model = [model]  # a list, so the model is not registered as a submodule
        self.tap = FeatureTap(model, self.layers)
        try:
            shapes = self._dry_shapes(example_input)
        except BaseException:
            self.tap.close()
            raise
        self.heads = nn.ModuleDict({
            _key(p): ReadoutHead(head, shapes[p], n_classes, depth, width, token_pool) for p in self.layers
        })
        try:
            device = next(unwrap(model).parameters()).device
            self.heads.to(device)
        except StopIteration:
            pass

    def _dry_shapes(self, example_input: Any) -> dict[str, tuple[int, ...]]:
        model = unwrap(self._model[0])
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                call_model(model, example_input)
        finally:
            model.train(was_training)
        silent = [p for p in self.layers if p not in self.tap.features]
        if silent:
            raise UserError(f"layer(s) {', '.join(silent)} of {type(model).__name__} did not run in a forward "
                            "pass of the example input; read out a layer the forward pass uses")
        shapes = {p: tuple(f.shape[1:]) for p, f in self.tap.features.items()}
        self.tap.features.clear()
        return shapes

    def head(self, layer: str) -> ReadoutHead:
        """The head reading `layer`."""
        return self.heads[_key(layer)]

    def reset(self) -> None:
        """Re-initialise every head (the hooks stay in place)."""
        for head in self.heads.values():
            head.reset_parameters()

    def features(self, detach: bool = True) -> dict[str, torch.Tensor]:
        """The hooked feature of each layer from the model's last forward pass (detached by default)."""
        missing = [p for p in self.layers if p not in self.tap.features]
        if missing:
            raise RuntimeError(f"no feature recorded for {missing}: run the model forward first")
        return {p: (f.detach() if detach else f) for p, f in self.tap.features.items()}

    def logits(self, detach: bool = True) -> dict[str, torch.Tensor]:
        """Each head's logits from the features of the model's last forward pass."""
        return {p: self.head(p)(f) for p, f in self.features(detach).items()}

    def loss(self, y: torch.Tensor) -> torch.Tensor:
        """Sum over layers of the heads' cross-entropy on detached features."""
        return sum(F.cross_entropy(z, y) for z in self.logits().values())  # type: ignore[return-value]

    def forward(self, x: Any) -> dict[str, torch.Tensor]:
        """Run the model on `x` (a tensor, or a mapping of keyword inputs) and return each head's logits."""
        call_model(self._model[0], x)
        return self.logits()

    def close(self) -> None:
        """Remove the hooks from the model."""
        self.tap.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
