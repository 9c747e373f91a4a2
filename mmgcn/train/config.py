"""The trainer's settings: a frozen dataclass, validated at construction."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from mmgcn.data.dataset import SPLITS
from mmgcn.errors import DeviceError
from mmgcn.eval.metrics import METRIC_NAMES
from mmgcn.nn.subgraph import check_fanouts

NEGATIVES = ("all", "train-items")
#: train.precision values: fp32, or the forward pass under bfloat16 autocast
PRECISIONS = ("fp32", "bf16")
#: the largest learning rate accepted: Adam steps of this size already blow any embedding up
MAX_LR = 10.0

#: the automatic batch size: 2048 (the field's usual setting) while an epoch has at most
#: AUTO_STEPS steps of it, then the next power of two that keeps an epoch at AUTO_STEPS
#: steps, at most AUTO_BATCH_MAX (benchmarks/large_defaults.py measures the effect)
AUTO_BATCH_MIN = 2048
AUTO_BATCH_MAX = 32768
AUTO_STEPS = 128


def auto_batch_size(n_train: int) -> int:
    """The batch size ``TrainConfig(batch_size=None)`` uses for ``n_train`` train interactions.

    Graph models propagate over the whole train graph at every step, so the cost of an
    epoch grows with the number of steps times the graph size; keeping the steps per epoch
    bounded keeps large datasets trainable on default settings. Up to
    ``AUTO_STEPS * AUTO_BATCH_MIN`` (262,144) train interactions -- TikTok, Amazon Baby,
    ML-100K -- this is 2048; a 1M-interaction train split gets 8192.
    """
    if n_train <= AUTO_STEPS * AUTO_BATCH_MIN:
        return AUTO_BATCH_MIN
    size = 1 << int(-(-n_train // AUTO_STEPS) - 1).bit_length()
    return int(min(max(size, AUTO_BATCH_MIN), AUTO_BATCH_MAX))


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained and selected.

    Args:
        epochs: maximum number of epochs (default ``1000``; early stopping usually ends sooner).
        batch_size: BPR triples per step (default ``None``: :func:`auto_batch_size` of the
            train split, 2048 up to 262,144 train interactions, larger beyond).
        lr: Adam learning rate (default ``1e-3``).
        weight_decay: Adam weight decay on all parameters (default ``0``; models add
            their own L2 on the batch's embeddings in ``loss``).
        patience: evaluations without improvement before stopping (default ``20``).
        min_delta: an evaluation improves only if it beats the best by more than this.
        eval_every: validate every this many epochs (default ``1``).
        metric: selection metric on the valid split, ``"<name>@<k>"`` with ``k`` in ``ks``.
        ks: cut-offs reported (default ``(10, 20, 50)``).
        seed: seeds python / numpy / torch and the negative sampler (default ``0``).
        eval_block_size: users scored per evaluation block (default: automatic).
        valid_mask: splits masked when validating (default ``("train",)``).
        test_mask: splits masked in the final test (default ``("train", "valid")``; the
            published TikTok / Baby tables mask only ``train``).
        warm_cold: report the final test separately on warm and cold items (default ``True``).
        negatives: where BPR negatives come from: ``"all"`` items (default, as the original
            code) or ``"train-items"``, the items with at least one train interaction (as
            MMRec's sampler, which draws among the train split's items), so that items held
            out entirely (a cold-start split) never enter training, not even as negatives.
        num_neighbors: sampled-subgraph training (default ``None``: every step propagates
            over the whole train graph). Neighbours drawn per node at each hop, one value per
            layer of the model or one for all, ``-1`` for every neighbour (PyG's
            ``num_neighbors``; the first value is the batch's own hop); each step then
            propagates over the batch's sampled neighbourhood only
            (:mod:`mmgcn.train.subgraph`; models whose ``subgraph_sampling()`` says they can:
            MMGCN, LightGCN). Validation and test always use the full graph.
        precision: ``"fp32"`` (default) or ``"bf16"``: the training forward pass under
            bfloat16 autocast (parameters, gradients and Adam stay fp32; evaluation is fp32).
            Worth it on GPUs (tensor cores) and CPUs with bf16 matrix units.
        compile: ``torch.compile`` the training loss (default ``False``; compiled on the
            first step).
        calibration_tolerance: for models with a post-training calibration
            (``Recommender.calibration_candidates``; MMGCN+'s new-item scale and offset): the
            share of the best candidate's validation metric the choice may give up to rank
            cold items (no train edge) higher. ``0`` (default): the best candidate on the
            metric. ``t > 0``: among the candidates within ``(1 - t)`` of the best, the one
            with the highest validation metric over cold items (an exploration budget,
            chosen on validation like the rest).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (default ``"cpu"``).
        deterministic: ask torch for deterministic kernels (default ``True``).
        progress: tqdm bar over each epoch's batches (default ``True``).
    """

    #: keys added after benchmark results existed -> the value that reproduces the behaviour
    #: before them: at that value a bench cell's config hash leaves them out
    #: (``mmgcn.bench.runner.hashed_view``), so the cells finished before them stay valid
    legacy_values: ClassVar[Mapping[str, object]] = {"negatives": "all", "num_neighbors": None, "precision": "fp32",
                                                     "compile": False, "calibration_tolerance": 0.0}

    epochs: int = 1000
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 20
    min_delta: float = 0.0
    eval_every: int = 1
    metric: str = "recall@20"
    ks: tuple[int, ...] = (10, 20, 50)
    seed: int = 0
    eval_block_size: int | None = None
    valid_mask: tuple[str, ...] = ("train",)
    test_mask: tuple[str, ...] = ("train", "valid")
    warm_cold: bool = True
    negatives: str = "all"
    num_neighbors: tuple[int, ...] | None = None
    precision: str = "fp32"
    compile: bool = False
    calibration_tolerance: float = 0.0
    device: str = "cpu"
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": 1 if self.batch_size is None else self.batch_size, "patience": self.patience,
                    "eval_every": self.eval_every, "lr": self.lr}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"train.{name} must be positive, got {value!r}")
        if not math.isfinite(self.lr) or self.lr > MAX_LR:
            raise ValueError(
                f"train.lr {self.lr!r} is not a usable Adam learning rate (it must be finite and at most "
                f"{MAX_LR:g}; typical values are 1e-4 .. 1e-1)"
            )
        if not 0.0 <= self.calibration_tolerance < 1.0:
            raise ValueError(f"train.calibration_tolerance must be in [0, 1), got {self.calibration_tolerance!r}")
        for name in ("weight_decay", "min_delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"train.{name} must be a finite number >= 0, got {value!r}")
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ValueError(f"train.ks must be positive integers, got {list(self.ks)}")
        if self.eval_block_size is not None and self.eval_block_size <= 0:
            raise ValueError(f"train.eval_block_size must be positive, got {self.eval_block_size}")
        match = re.fullmatch(r"([a-z_]+)@(\d+)", self.metric)
        if not match or match.group(1) not in METRIC_NAMES or int(match.group(2)) not in self.ks:
            raise ValueError(
                f"train.metric {self.metric!r} must be '<name>@<k>' with name in {list(METRIC_NAMES)} "
                f"and k in train.ks {list(self.ks)}"
            )
        for name in ("valid_mask", "test_mask"):
            bad = [s for s in getattr(self, name) if s not in SPLITS]
            if bad:
                raise ValueError(f"train.{name} names unknown split(s) {bad}; use names from {list(SPLITS)}")
        if "valid" in self.valid_mask or "test" in self.valid_mask or "test" in self.test_mask:
            raise ValueError("train.valid_mask may hold only 'train'; train.test_mask only 'train'/'valid'")
        if self.num_neighbors is not None:
            check_fanouts(self.num_neighbors, "train.num_neighbors")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision {self.precision!r} must be one of {list(PRECISIONS)}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"train.negatives {self.negatives!r} must be one of {list(NEGATIVES)}")
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"train.device {self.device!r}: use cpu, cuda, cuda:N, mps or auto")

    def torch_device(self) -> torch.device:
        """The torch device; a CUDA / MPS device this machine lacks raises :class:`DeviceError`."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return check_device(self.device)


def check_device(name: str) -> torch.device:
    """``torch.device(name)`` after checking that this machine has it.

    Raises:
        DeviceError: a malformed name, ``cuda`` without a usable GPU, ``cuda:N`` beyond the
            GPUs present, ``mps`` without Apple's backend.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name or ""):
        raise DeviceError(f"device {name!r}: use cpu, cuda, cuda:N, mps or auto")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r}: no CUDA GPU is usable here (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use --device cpu (or auto)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {name!r}: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"device {name!r}: Apple's MPS backend is not available here; use --device cpu")
    return device


__all__ = ["MAX_LR", "NEGATIVES", "TrainConfig", "auto_batch_size", "check_device"]

__all__ = ["AUTO_BATCH_MAX", "AUTO_BATCH_MIN", "AUTO_STEPS", "MAX_LR", "NEGATIVES", "PRECISIONS", "TrainConfig", "auto_batch_size", "check_device"]
