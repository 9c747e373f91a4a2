"""Checks that stop training on non-finite numbers before anything bad is saved.

A diverging run (learning rate too high, a model bug) turns the loss and then the
parameters into NaN / inf. Saving such a state would overwrite the last good
``checkpoints/last.pt`` and let ``recommend`` rank by NaN scores, so the trainer calls
:func:`check_epoch` after every epoch, before the epoch's checkpoint is written, and
:func:`mmgcn.train.loading.load_run` refuses checkpoints that fail
:func:`nonfinite_tensors`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from mmgcn.errors import TrainingDivergedError


def nonfinite_tensors(state: Mapping[str, object]) -> list[str]:
    """Names of the floating-point tensors in ``state`` holding a NaN or an inf."""
    return [
        name for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def check_epoch(model: nn.Module, mean_loss: float, where: str, lr: float | None = None) -> None:
    """Raise :class:`TrainingDivergedError` if the epoch's loss or any parameter is not finite."""
    hint = f"lower train.lr (now {lr:g})" if lr is not None else "lower the learning rate"
    if not math.isfinite(mean_loss):
        raise TrainingDivergedError(f"{where}: the mean loss is {mean_loss}; training diverged -- {hint} or check the model")
    bad = nonfinite_tensors(dict(model.named_parameters()))
    if bad:
        raise TrainingDivergedError(
            f"{where}: parameters {bad[:5]}{' ...' if len(bad) > 5 else ''} hold NaN/inf; training diverged -- {hint}"
        )


__all__ = ["check_epoch", "nonfinite_tensors"]
