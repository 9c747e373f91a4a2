"""Load a trained run back: its dataset, its model and a checkpoint's weights.

A run directory (:mod:`mmgcn.train.run_dir`) records everything needed: ``config.yaml``
names the model, the dataset and the loader's arguments; ``checkpoints/best.pt`` (the
selected state) or ``checkpoints/last.pt`` holds the weights, read with
``torch.load(..., weights_only=True)`` (:func:`mmgcn.train.checkpoint.load_checkpoint`).
Features are not in checkpoints: the dataset is loaded again, with the same feature cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmgcn.config import from_dict, load_yaml
from mmgcn.data.dataset import Dataset
from mmgcn.data.registry import load_dataset
from mmgcn.models.base import Recommender, build_model
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint
from mmgcn.train.config import TrainConfig

CHECKPOINTS = {"best": rd.BEST_CHECKPOINT, "last": rd.LAST_CHECKPOINT}


@dataclass
class LoadedRun:
    """A run directory brought back to life.

    Attributes:
        run_dir: the directory.
        model: the model with the checkpoint's weights, in eval mode.
        dataset: the dataset it was trained on (reloaded).
        config: the recorded ``config.yaml`` (``run``, ``model``, ``train``, ``dataset`` ...).
        checkpoint: ``"best"`` or ``"last"``.
        epoch: the checkpoint's epoch.
    """

    run_dir: Path
    model: Recommender
    dataset: Dataset
    config: dict[str, Any]
    checkpoint: str
    epoch: int


def load_run(
    run_dir: str | os.PathLike,
    checkpoint: str = "best",
    *,
    data_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    device: str | None = None,
) -> LoadedRun:
    """Rebuild the model of ``run_dir`` with a checkpoint's weights.

    Args:
        run_dir: a directory written by ``mmgcn train`` (or a bench cell's ``run/``).
        checkpoint: ``"best"`` (the validation-selected state, default) or ``"last"``.
        data_dir: raw data root (default: the one the run recorded, else ``$MMGCN_DATA``).
        dataset: use this dataset instead of loading the recorded one (it must be the same).
        device: torch device (default: the run's ``train.device``; ``"auto"`` picks CUDA if any).

    Raises:
        FileNotFoundError: no ``config.yaml`` or no such checkpoint.
        ValueError: unknown checkpoint name, a checkpoint of another model, or weights that
            do not fit the rebuilt model (e.g. a different dataset).
    """
    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {sorted(CHECKPOINTS)}, got {checkpoint!r}")
    config_path = run_dir / rd.CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found; RUN_DIR must be a directory written by 'mmgcn train'")
    config = load_yaml(config_path)
    run = config.get("run") or {}
    if not run.get("model") or not run.get("dataset"):
        raise ValueError(f"{config_path}: section 'run' must name the model and the dataset")
    train_config = from_dict(TrainConfig, dict(config.get("train") or {}), where=f"{config_path}: train")
    state = load_checkpoint(run_dir / CHECKPOINTS[checkpoint])
    if state.get("model_name") != run["model"]:
        raise ValueError(f"{run_dir / CHECKPOINTS[checkpoint]}: a checkpoint of model {state.get('model_name')!r}, "
                         f"but {config_path} names {run['model']!r}")
    if dataset is None:
        root = data_dir if data_dir is not None else run.get("data_dir")
        dataset = load_dataset(run["dataset"], data_dir=root, **dict(config.get("dataset") or {}))
    model = build_model(run["model"], dataset, dict(config.get("model") or {}))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(
            f"{run_dir / CHECKPOINTS[checkpoint]}: the weights do not fit {run['model']} built on {dataset.name} "
            f"({dataset.n_users} users x {dataset.n_items} items) -- was the dataset changed since training? ({exc})"
        ) from None
    target = device or train_config.device
    model.to(TrainConfig(device=target).torch_device() if target == "auto" else target)
    model.eval()
    return LoadedRun(run_dir, model, dataset, config, checkpoint, int(state.get("epoch", 0)))


__all__ = ["CHECKPOINTS", "LoadedRun", "load_run"]
