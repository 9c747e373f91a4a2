"""The trainer's settings: a frozen dataclass, validated at construction."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from mmgcn.data.dataset import SPLITS
from mmgcn.eval.metrics import METRIC_NAMES

NEGATIVES = ("all", "train-items")
#: train.precision values: fp32, or the forward pass under bfloat16 autocast
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained and selected.

    Args:
        epochs: maximum number of epochs (default ``1000``; early stopping usually ends sooner).
        batch_size: BPR triples per step (default ``2048``).
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
        negatives: where BPR negatives come from: ``"all"`` items (default, as MMRec and the
            original code) or ``"train-items"``, the items with at least one train
            interaction, so that items held out entirely (a cold-start split) never enter
            training, not even as negatives.
        num_neighbors: sampled-subgraph training (default ``None``: every step propagates
            over the whole train graph). Neighbours drawn per node at each hop, one value per
            layer of the model or one for all (PyG's ``num_neighbors``); each step then
            propagates over the batch's sampled neighbourhood only
            (:mod:`mmgcn.train.subgraph`; models whose ``subgraph_sampling()`` says they can:
            MMGCN, LightGCN). Validation and test always use the full graph.
        precision: ``"fp32"`` (default) or ``"bf16"``: the training forward pass under
            bfloat16 autocast (parameters, gradients and Adam stay fp32; evaluation is fp32).
            Worth it on GPUs (tensor cores) and CPUs with bf16 matrix units.
        compile: ``torch.compile`` the training loss (default ``False``; compiled on the
            first step).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (default ``"cpu"``).
        deterministic: ask torch for deterministic kernels (default ``True``).
        progress: tqdm bar over each epoch's batches (default ``True``).
    """

    epochs: int = 1000
    batch_size: int = 2048
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
    device: str = "cpu"
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "patience": self.patience,
                    "eval_every": self.eval_every, "lr": self.lr}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"train.{name} must be positive, got {value!r}")
        if self.weight_decay < 0 or self.min_delta < 0:
            raise ValueError("train.weight_decay and train.min_delta must be >= 0")
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
        if self.num_neighbors is not None and (not self.num_neighbors or min(self.num_neighbors) <= 0):
            raise ValueError(f"train.num_neighbors must be positive integers (one per hop, or one for all), "
                             f"got {list(self.num_neighbors)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision {self.precision!r} must be one of {list(PRECISIONS)}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"train.negatives {self.negatives!r} must be one of {list(NEGATIVES)}")
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"train.device {self.device!r}: use cpu, cuda, cuda:N, mps or auto")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


__all__ = ["NEGATIVES", "PRECISIONS", "TrainConfig"]
