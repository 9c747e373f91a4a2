"""The real cell runner: build the model, train it with :class:`mmgcn.train.trainer.Trainer`.

One cell = one model spec and one seed. The model is built from the registry on the
dataset (restricted to the spec's modalities, for ablations) after seeding everything
with the cell's seed; the trainer early-stops on the benchmark's validation metric,
restores the best-validation state and evaluates the test split once. The runner turns
the trainer's outcome into a :class:`~mmgcn.bench.results.CellResult` and the per-user
test vectors; the trainer's run directory (resolved config, ``metrics.jsonl``,
``test_metrics.json``, log) is kept in the cell under ``run/``, its checkpoints are
deleted once the cell is done unless ``keep_checkpoints``. An interrupted cell resumes from
``run/checkpoints/last.pt`` (the trainer's resume reproduces the uninterrupted run).

Under the cold-start protocol the test split is ranked twice: over all items (with the warm
/ cold breakdown, metrics ``warm/...`` and ``cold/...``) and, for models that read item
content, among the cold test items only (``cold-only/...``). ID-only models get no
cold-only ranking: they cannot represent an item without interactions, and the tables mark
them unable instead of showing chance-level figures.

With ``nproc > 1`` (``mmgcn bench --nproc N``) each cell trains data-parallel: the runner
starts ``N`` ranks on this machine through :func:`mmgcn.train.distributed.launch` (the
elastic launcher torchrun uses, gloo on CPU, NCCL on GPUs), the dataset is pickled to them,
and rank 0's outcome becomes the cell's. The number of ranks is recorded in the cell's
``run/config.yaml`` but is not part of its config hash: a cell finished with one number of
ranks counts as finished for another.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any

import numpy as np

from mmgcn.bench.cells import CellOutput, CellRunner, CellTask
from mmgcn.bench.config import BenchConfig, ModelSpec
from mmgcn.bench.results import CellResult, calibration_record
from mmgcn.config import ConfigError, from_dict, to_dict
from mmgcn.data.dataset import Dataset
from mmgcn.models.base import build_config, build_model, model_class
from mmgcn.train.config import TrainConfig
from mmgcn.train.distributed import DistributedContext, launch
from mmgcn.train.run_dir import LAST_CHECKPOINT
from mmgcn.train.trainer import Trainer
from mmgcn.utils.seed import seed_everything

# set once, at the top level of the benchmark config, for every model alike
BENCH_OWNED_KEYS = ("metric", "ks", "seed", "device")
# trainer settings that cannot change a cell's results (left out of its config hash)
NOT_HASHED = ("progress", "eval_block_size")


def hashed_view(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict for a cell's hash. Fields added after results
    existed (its class's ``legacy_values``: name -> the value that reproduces the behaviour
    before them) are left out while they hold that value, so the cells finished before them
    stay valid."""
    values = to_dict(config)
    legacy = getattr(type(config), "legacy_values", {})
    unknown = sorted(set(legacy) - {f.name for f in dataclasses.fields(config)})
    if unknown:
        raise TypeError(f"{type(config).__name__}.legacy_values names no field {unknown}")
    for name, neutral in legacy.items():
        if _same(getattr(config, name), neutral):
            values.pop(name)
    return values


def _same(value: Any, neutral: Any) -> bool:
    """Config values compared as the hash sees them (a list from YAML equals a tuple)."""
    if isinstance(value, (list, tuple)) and isinstance(neutral, (list, tuple)):
        return list(value) == list(neutral)
    return bool(value == neutral)


class TrainerRunner(CellRunner):
    """Train and test a cell with the project's trainer and evaluator.

    Args:
        progress: let the trainer draw its per-epoch batch bars (default ``True``).
        keep_checkpoints: keep ``run/checkpoints/`` of finished cells (default ``False``:
            they are only needed to resume an interrupted cell).
        nproc: data-parallel ranks per cell on this machine (default ``1``: in this process).
    """

    def __init__(self, progress: bool = True, keep_checkpoints: bool = False, nproc: int = 1) -> None:
        if nproc < 1:
            raise ConfigError(f"--nproc must be >= 1, got {nproc}")
        self.progress = progress
        self.keep_checkpoints = keep_checkpoints
        self.nproc = nproc

    def train_config(self, values: dict[str, Any], config: BenchConfig, seed: int = 0) -> TrainConfig:
        """The :class:`TrainConfig` of a cell: the config's trainer keys plus the benchmark's own."""
        clash = [k for k in BENCH_OWNED_KEYS if k in values]
        if clash:
            raise ConfigError(
                f"train settings {clash} are set by the benchmark for every model alike "
                f"(use the top-level keys metric / ks / seeds / device)"
            )
        cold_start = config.protocol == "cold-start"
        merged = {
            "warm_cold": cold_start,
            # items held out entirely stay out of training (not even negatives)
            **({"negatives": "train-items"} if cold_start else {}),
            **values,
            "metric": config.metric,
            "ks": list(config.ks),
            "device": config.device,
            "seed": seed,
            "progress": self.progress,
        }
        return from_dict(TrainConfig, merged, where="train")

    @staticmethod
    def model_config(spec: ModelSpec, values: dict[str, Any], config: BenchConfig) -> dict[str, Any]:
        """A cell's model config: under the cold-start protocol, content models represent items
        without train edges from their content alone, as new items (``edgeless_items``)."""
        if config.protocol == "cold-start" and model_class(spec.base).uses_content:
            return {"edgeless_items": "content", **values}
        return dict(values)

    def resolve(self, spec: ModelSpec, model_config: dict[str, Any], train_config: dict[str, Any],
                config: BenchConfig) -> dict[str, Any]:
        model_config = self.model_config(spec, model_config, config)
        train = hashed_view(self.train_config(train_config, config))
        for key in (*NOT_HASHED, "seed"):
            train.pop(key, None)
        return {"model": hashed_view(build_config(spec.base, model_config)), "train": train}

    def describe(self, train_config: dict[str, Any], config: BenchConfig) -> dict[str, Any]:
        values = to_dict(self.train_config(train_config, config))
        for key in (*NOT_HASHED, "seed"):
            values.pop(key, None)
        return values

    def can_resume(self, task: CellTask) -> bool:
        return (task.directory / "run" / LAST_CHECKPOINT).is_file()

    def run(self, task: CellTask, dataset: Dataset, config: BenchConfig, resume: bool = False) -> CellOutput:
        if self.nproc == 1:
            return self.run_rank(None, task, dataset, config, resume)
        return launch(_run_rank, self.nproc, self, task, dataset, config, resume, device=config.device)[0]

    def run_rank(self, context: DistributedContext | None, task: CellTask, dataset: Dataset, config: BenchConfig,
                 resume: bool = False) -> CellOutput | None:
        """Train and test the cell as this rank of ``context`` (``None``: alone); ``None`` on
        ranks other than 0."""
        spec = task.spec
        data = dataset.select_modalities(spec.modalities) if spec.modalities is not None else dataset
        train_config = self.train_config(task.train_config, config, task.seed)
        seed_everything(task.seed, deterministic=train_config.deterministic)
        model = build_model(spec.base, data, self.model_config(spec, task.model_config, config))
        run_dir = task.directory / "run"
        uses_content = bool(model_class(spec.base).uses_content)
        trainer = Trainer(
            model, data, train_config, run_dir, resume=resume,
            run_config={"bench": {"spec": spec.name, "seed": task.seed, "config_hash": task.config_hash,
                                  "grid_point": task.grid_point,
                                  **({"ranks": context.world_size} if context is not None else {})}},
            cold_only_test=config.protocol == "cold-start" and uses_content,
            distributed=context,
        )
        trial = task.grid_point is not None
        # a grid trial never evaluates test; it keeps its checkpoints until the benchmark has
        # reused the selected one (mmgcn.bench.grid)
        outcome = trainer.fit(evaluate_test=not trial)
        if context is not None and not context.is_main:
            return None
        if not self.keep_checkpoints and not trial:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        curve = [[r["epoch"], r["valid"][config.metric]] for r in outcome.history if "valid" in r]
        epoch_times = [r["train_seconds"] for r in outcome.history if r.get("epoch", 0) >= 1]
        result = CellResult(
            model=spec.name,
            seed=task.seed,
            valid_curve=curve,
            best_epoch=outcome.best_epoch,
            best_valid=float(outcome.best_value) if np.isfinite(outcome.best_value) else None,
            best_valid_metrics=dict(outcome.valid),
            epochs=outcome.epochs_run,
            train_s_per_epoch=float(np.mean(epoch_times)) if epoch_times else 0.0,
            params=int(model.num_parameters()),
            model_config=to_dict(model.config),
            uses_content=uses_content,
            calibration=calibration_record(trainer.calibration),
        )
        if trial:
            return CellOutput(result)
        test = outcome.test
        if test is None:
            raise RuntimeError(f"{spec.name}: the trainer returned no test evaluation")
        metrics = dict(test.metrics)
        for group, group_result in test.groups.items():
            metrics.update({f"{group}/{name}": value for name, value in group_result.metrics.items()})
        per_user = test.per_user_arrays()
        n_test_users = {"all": test.n_users, **{g: r.n_users for g, r in test.groups.items()}}
        if outcome.test_cold_only is not None:
            metrics.update({f"cold-only/{name}": value for name, value in outcome.test_cold_only.metrics.items()})
            per_user.update(outcome.test_cold_only.per_user_arrays(prefix="cold-only/"))
            n_test_users["cold-only"] = outcome.test_cold_only.n_users
        result.test, result.eval_s, result.n_test_users = metrics, float(test.seconds), n_test_users
        return CellOutput(result, per_user)


def _run_rank(context: DistributedContext | None, runner: TrainerRunner, task: CellTask, dataset: Dataset,
              config: BenchConfig, resume: bool) -> CellOutput | None:
    """What each rank of a ``--nproc`` cell runs (module level: it is pickled to the ranks)."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:  # torchrun's default is 1; share the cores instead
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // runner.nproc))
    return runner.run_rank(context, task, dataset, config, resume)
