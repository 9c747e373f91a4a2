"""What a training step calls ``loss`` on: the model, wrapped by the run's options.

The trainer never branches on options inside its loop: :func:`step_module` composes, once,
the wrappers the config asks for, each a module with the model's ``loss(users, pos, neg)``:

1. :class:`~mmgcn.train.subgraph.SubgraphTraining` (``train.num_neighbors``): propagate over
   the batch's sampled neighbourhood;
2. :class:`AutocastLoss` (``train.precision = "bf16"``): the forward pass under bfloat16
   autocast (matmuls and linear layers in bf16, reductions and the loss in fp32; the
   parameters, gradients and Adam stay fp32);
3. :class:`CompiledLoss` (``train.compile``): ``torch.compile`` of the loss;
4. :class:`~mmgcn.train.distributed.DataParallelLoss` (a data-parallel run): gradients
   averaged over the ranks.

Evaluation is not wrapped: it always runs the model in fp32, eagerly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmgcn.train.config import TrainConfig
from mmgcn.train.distributed import DistributedContext
from mmgcn.train.subgraph import SubgraphTraining

#: train.precision -> the autocast dtype (None: no autocast)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # keys: mmgcn.train.config.PRECISIONS


class AutocastLoss(nn.Module):
    """``loss`` of ``module`` with its forward pass under ``torch.autocast``.

    Args:
        module: the model (or a wrapper with ``loss``).
        device: where the step runs (``cuda`` or ``cpu`` autocast).
        dtype: the lower precision (default ``torch.bfloat16``: fp32's range, so no loss scaling).
    """

    def __init__(self, module: nn.Module, device: torch.device, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype = module, device.type, dtype

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            value = self.module.loss(users, pos, neg)
        return value.float()

    def extra_repr(self) -> str:
        return f"{self.device_type}, {self.dtype}"


class CompiledLoss(nn.Module):
    """``loss`` of ``module`` through ``torch.compile`` (compiled on the first step)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self._compiled = torch.compile(module.loss)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        return self._compiled(users, pos, neg)


def step_module(model: nn.Module, config: TrainConfig, device: torch.device,
                distributed: DistributedContext | None = None) -> nn.Module:
    """``model`` wrapped by the options of ``config`` (and DDP for a data-parallel run)."""
    module: nn.Module = model
    if config.num_neighbors is not None:
        module = SubgraphTraining(module, config.num_neighbors)
    if PRECISIONS[config.precision] is not None:
        module = AutocastLoss(module, device, PRECISIONS[config.precision])
    if config.compile:
        module = CompiledLoss(module)
    if distributed is not None:
        module = distributed.wrap(module, device)
    return module


__all__ = ["PRECISIONS", "AutocastLoss", "CompiledLoss", "step_module"]
