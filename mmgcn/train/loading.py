"""Load a trained run back: its dataset, its model and a checkpoint's weights.

A run directory (:mod:`mmgcn.train.run_dir`) records everything needed: ``config.yaml``
names the model, the dataset and the loader's arguments; ``checkpoints/best.pt`` (the
selected state) or ``checkpoints/last.pt`` holds the weights, read with
``torch.load(..., weights_only=True)`` (:func:`mmgcn.train.checkpoint.load_checkpoint`).
Features are not in checkpoints: the dataset is loaded again, with the same feature cache.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmgcn.config import from_dict, load_yaml
from mmgcn.data.dataset import Dataset
from mmgcn.data.fingerprint import dataset_fingerprint
from mmgcn.data.registry import load_dataset
from mmgcn.errors import CheckpointError, ConfigError
from mmgcn.models.base import Recommender, build_model
from mmgcn.train import binding
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint, load_model_state, require
from mmgcn.train.config import TrainConfig, check_device
from mmgcn.train.guards import nonfinite_tensors

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
        data_differences: how the data differ from the run's, when accepted with
            ``allow_data_change`` (empty otherwise).
    """

    run_dir: Path
    model: Recommender
    dataset: Dataset
    config: dict[str, Any]
    checkpoint: str
    epoch: int
    data_differences: list[str] = field(default_factory=list)


def load_run(
    run_dir: str | os.PathLike,
    checkpoint: str = "best",
    *,
    data_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    device: str | None = None,
    allow_data_change: bool = False,
    action: str = "load",
) -> LoadedRun:
    """Rebuild the model of ``run_dir`` with a checkpoint's weights.

    Args:
        run_dir: a directory written by ``mmgcn train`` (or a bench cell's ``run/``).
        checkpoint: ``"best"`` (the validation-selected state, default) or ``"last"``.
        data_dir: raw data root (default: the one the run recorded, else ``$MMGCN_DATA``).
        dataset: use this dataset instead of loading the recorded one (it must be the same).
        device: torch device (default: the run's ``train.device``; ``"auto"`` picks CUDA if any).
        allow_data_change: accept data that differ from the run's fingerprint (the
            differences are recorded in ``RUN/dataset.json`` and returned).
        action: what the run is loaded for (``"evaluate"``, ``"recommend"``), for messages.

    Raises:
        FileNotFoundError: no ``config.yaml`` or no such checkpoint.
        ConfigError: unknown checkpoint name, a malformed ``config.yaml``.
        DeviceError: the device is not available here.
        CheckpointError: a checkpoint of another model, weights that do not fit the rebuilt
            model, or weights holding NaN / inf (a diverged run).
        RunMismatchError: the data differ from the run's (unless ``allow_data_change``).
    """
    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be one of {sorted(CHECKPOINTS)}, got {checkpoint!r}")
    config_path = run_dir / rd.CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found; RUN_DIR must be a directory written by 'mmgcn train'")
    config = load_yaml(config_path)
    run = config.get("run") or {}
    if not isinstance(run, dict) or not run.get("model") or not run.get("dataset"):
        raise ConfigError(f"{config_path}: section 'run' must name the model and the dataset")
    for section in ("train", "model", "dataset"):
        if not isinstance(config.get(section) or {}, dict):
            raise ConfigError(f"{config_path}: section '{section}' must be a mapping")
    train_config = from_dict(TrainConfig, dict(config.get("train") or {}), where=f"{config_path}: train")
    target = device or train_config.device
    torch_device = check_device(target)  # before loading anything: a missing GPU fails at once
    path = run_dir / CHECKPOINTS[checkpoint]
    state = load_checkpoint(path)
    require(state, ("model_name", "model"), path)
    if state.get("model_name") != run["model"]:
        raise CheckpointError(f"{path}: a checkpoint of model {state.get('model_name')!r}, "
                              f"but {config_path} names {run['model']!r}")
    bad = nonfinite_tensors(state["model"]) if isinstance(state["model"], dict) else []
    if bad:
        raise CheckpointError(
            f"{path}: weights {bad[:3]} hold NaN/inf (the run diverged); use the other checkpoint "
            f"(--checkpoint best/last) or retrain with a lower train.lr"
        )
    if dataset is None:
        root = data_dir if data_dir is not None else run.get("data_dir")
        kwargs = dict(config.get("dataset") or {})
        parameters = inspect.signature(load_dataset).parameters
        valid = set(parameters) - {"name", "data_dir"}
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = [] if open_ended else sorted(set(kwargs) - valid)
        if unknown:
            raise ConfigError(f"{config_path}: section 'dataset' has unknown key(s) {unknown}; valid keys are {sorted(valid)}")
        dataset = load_dataset(run["dataset"], data_dir=root, **kwargs)
    accepted = binding.check_data(run_dir, dataset_fingerprint(dataset), action=action,
                                  allow_change=allow_data_change, checkpoint=state)
    model = build_model(run["model"], dataset, dict(config.get("model") or {}))
    load_model_state(model, state["model"], path, f"{dataset.name} ({dataset.n_users} users x {dataset.n_items} items)")
    model.to(torch_device)
    model.eval()
    return LoadedRun(run_dir, model, dataset, config, checkpoint, int(state.get("epoch", 0)), accepted)


__all__ = ["CHECKPOINTS", "LoadedRun", "load_run"]
