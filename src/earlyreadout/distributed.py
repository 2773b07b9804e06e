"""Devices and precision: process-group setup for `torchrun` (gloo on CPU, nccl on GPU), the collectives
methods need, device names, and mixed precision.

Under DDP only the network is wrapped; a method that owns other state (readout heads, group weights)
keeps every rank's copy identical with these helpers: `sync_gradients` before stepping a non-DDP
module's optimizer, `all_reduce_sum` for statistics that drive state updates, `gather_live` for losses that
couple examples of the global batch, and `broadcast_module` for buffers that may drift (BatchNorm running
statistics). Every helper is a no-op in one process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.params import Param


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's environment; single process when there is none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend(device, int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def backend(device: torch.device, local_processes: int) -> str:
    """NCCL when every process of a machine has a GPU of its own; gloo on CPUs, and when processes share a GPU
    (NCCL refuses two ranks on one device)."""
    if device.type == "cuda" and torch.cuda.device_count() >= local_processes:
        return "nccl"
    return "gloo"


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """This process's device: `cuda:<local rank>` for a multi-process GPU run (wrapping around the machine's
    GPUs when there are more processes than GPUs), else `device` unchanged."""
    if info.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def teardown() -> None:
    """Leave the process group once every rank has finished its last collective; call it once the run's
    network is freed (the engine's `train` calls it after the run's body returns).

    A DDP network still alive keeps the group past `destroy_process_group`, to be destroyed during interpreter
    exit, where gloo can abort the process ("terminate called without an active exception";
    `benchmarks/ddp_teardown.py`); what is freed but caught in a reference cycle is collected here first. The
    ranks then meet on the rendezvous store, not in a gloo barrier, so no rank closes its gloo connections
    while a peer may still read a collective from them (pytorch/gloo#155).
    """
    if not dist.is_initialized():
        return
    gc.collect()
    if dist.get_world_size() > 1:
        store = dist.distributed_c10d._get_default_store()  # the rendezvous store, shared by every rank
        key = f"earlyreadout/finished/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"  # one per attempt
        store.set(key + str(dist.get_rank()), "1")
        store.wait([key + str(rank) for rank in range(dist.get_world_size())])
    dist.destroy_process_group()


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_initialized() and dist.get_world_size() > 1


def all_gather_cat(t: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Concatenate equally sized tensors from every rank (in rank order)."""
    t = t.to(device)
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t)
    return torch.cat(parts).cpu()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of `t` over all ranks (a new tensor; `t` itself in one process)."""
    if not active():
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by a constant."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def gather_live(t: torch.Tensor) -> torch.Tensor:
    """Every rank's equally sized `t` concatenated in rank order, differentiable through this rank's own part,
    whose gradient is multiplied by the world size: a loss every rank computes on the whole, with gradients
    averaged by DDP, then has the gradient of the one-process loss (for penalties that couple examples)."""
    if not active():
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    parts[dist.get_rank()] = _ScaleGradient.apply(t, float(dist.get_world_size()))
    return torch.cat(parts)


def sync_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of parameters DDP does not manage (call after backward, before `step`).

    A parameter without a gradient counts as a zero gradient, so every rank takes the same step.
    """
    if not active():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def broadcast_module(module: nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """Copy rank `src`'s parameters and buffers (or buffers only) into every rank's `module`."""
    if not active():
        return
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    for t in tensors + list(module.buffers()):
        dist.broadcast(t, src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s picklable `obj` on every rank (e.g. a checkpoint only rank 0 can read)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def check_in_sync(module: nn.Module, rtol: float = 1e-5) -> None:
    """Raise if any parameter or buffer of `module` differs between ranks (a method forgot to sync)."""
    if not active():
        return
    names, sums = [], []
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point():
            names.append(name)
            sums.append(torch.stack([t.detach().double().sum(), t.detach().double().abs().sum()]))
    if not sums:
        return
    local = torch.stack(sums)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    for other in gathered[1:]:
        bad = ~torch.isclose(other, gathered[0], rtol=rtol, atol=1e-8).all(1)
        if bad.any():
            first = names[int(bad.nonzero()[0])]
            raise RuntimeError(f"rank copies of {first!r} differ: the method updates state outside DDP "
                               "without distributed.sync_gradients / all_reduce_sum")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def device_problem(name: str) -> str | None:
    """Why `name` is not a usable device (unknown, or CUDA without a GPU), or None: a check for a `Param`."""
    try:
        resolve_device(name)
    except UserError as e:
        return str(e)
    return None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was requested but no CUDA GPU is available; use device=cpu")
    return device



DEVICE_OPTION = Param("cpu", "cpu, cuda, cuda:N or auto (cuda when available)", affects_results=False,
                      check=device_problem)  # the analysis commands' device, checked before anything loads


# Mixed precision: `train.precision` as an autocast context and a gradient scaler. bf16 needs no scaling (its
# exponent range is fp32's); fp16 does, so its losses are scaled before backward and the scale adapts to
# overflow (torch.amp.GradScaler). fp32 turns both into no-ops, so one code path serves all.
PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast to the precision's dtype on `device`'s type (CPU too); disabled for fp32."""
    return torch.autocast(device.type, dtype=DTYPES.get(precision, torch.bfloat16), enabled=precision != "fp32")


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler that is active for fp16 only (for fp32 and bf16 it passes losses and steps through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
