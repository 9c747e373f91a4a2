"""BPR training with early stopping on the validation split, checkpoints and resume.

The loop: per epoch, one pass over the train interactions with uniform negatives
(:class:`mmgcn.train.sampling.BPRSampler`) and Adam on ``model.loss(users, pos, neg)``;
every ``eval_every`` epochs a full-ranking evaluation of the **valid** split; the best
validation ``metric`` selects the checkpoint; ``patience`` evaluations without improvement
stop the run. Only then is the best checkpoint restored and the **test** split evaluated,
once. The test split is reached through one method, :meth:`Trainer._final_test`, called
after the loop; selection never sees it. With ``cold_only_test`` it also ranks the test
split among the cold test items only (items without train edges), the cold-start
protocol's second ranking.

Every epoch starts with the model's :meth:`~mmgcn.models.base.Recommender.on_epoch_start`
hook (per-epoch work a model declares, e.g. a re-drawn pruned graph), given a generator
seeded from the run seed and the epoch.

Data-parallel runs (torchrun, ``distributed=``): see :mod:`mmgcn.train.distributed`; the
trainer shards the sampler, runs the loss through DistributedDataParallel, and leaves
evaluation, selection and every file to rank 0.

Resume: ``checkpoints/last.pt`` holds everything the next epoch depends on (model and
optimizer state, the sampler's and the global random states, the early-stopping counters
and the metric history; the epoch hook's generator depends only on the seed and the
epoch), so on CPU a resumed run reproduces the uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgcn.config import to_dict
from mmgcn.data.dataset import Dataset
from mmgcn.data.fingerprint import dataset_fingerprint
from mmgcn.errors import RunMismatchError, TrainingDivergedError
from mmgcn.eval.evaluator import EvalResult, evaluate
from mmgcn.models.base import Recommender
from mmgcn.train import binding
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    require,
    restore_rng_state,
    save_checkpoint,
)
from mmgcn.train.config import AUTO_BATCH_MIN, TrainConfig, auto_batch_size
from mmgcn.train.distributed import DistributedContext
from mmgcn.train.guards import check_epoch
from mmgcn.train.sampling import BPRSampler
from mmgcn.train.step import step_module
from mmgcn.utils.io import atomic_write_json
from mmgcn.utils.seed import epoch_generator, seed_everything

log = logging.getLogger(__name__)

#: TrainConfig fields that may change between an interrupted run and its resume
RESUMABLE_CHANGES = frozenset({"epochs", "progress", "device", "eval_block_size", "compile"})


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        metric: the selection metric, e.g. ``"recall@20"``.
        best_epoch: epoch of the selected checkpoint (``0`` for untrained models).
        best_value: its validation ``metric``.
        valid: all validation metrics at ``best_epoch``.
        test: the final test evaluation of the selected checkpoint (``None`` if skipped).
        test_cold_only: the same checkpoint's test ranking among the cold test items only
            (``None`` unless ``cold_only_test`` was asked for and the test split has cold items).
        epochs_run: last epoch trained.
        stopped_early: whether patience ran out before ``epochs``.
        history: one record per epoch (as in ``metrics.jsonl``).
        run_dir: the run directory, if any.
    """

    metric: str
    best_epoch: int
    best_value: float
    valid: dict[str, float]
    test: EvalResult | None
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    test_cold_only: EvalResult | None = None


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    # ru_maxrss is in KiB on Linux (bytes on macOS; close enough for a log line there)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_epoch(
    model: Recommender,
    optimizer: torch.optim.Optimizer,
    sampler: BPRSampler,
    batch_size: int,
    progress: bool = False,
    device: torch.device | str | None = None,
    description: str = "train",
) -> dict[str, float]:
    """One pass over the train interactions: ``{"loss": mean per triple, "seconds", "batches"}``.

    Raises:
        TrainingDivergedError: the epoch's mean loss or a parameter is NaN or infinite
            (a ``FloatingPointError``).
    """
    from tqdm.auto import tqdm

    if device is None:
        device = next(iter(model.parameters())).device
    started = time.perf_counter()
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    n_seen = n_batches = 0
    bar = tqdm(
        sampler.batches(batch_size), total=sampler.n_batches(batch_size),
        desc=description, unit="batch", leave=False, disable=not progress,
    )
    for users, pos, neg in bar:
        users, pos, neg = users.to(device), pos.to(device), neg.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(users, pos, neg)
        if loss.dim() != 0:
            raise ValueError(f"{type(model).__name__}.loss must return a scalar, got shape {tuple(loss.shape)}")
        loss.backward()
        optimizer.step()
        # accumulate on device: a .item() per batch would sync the GPU every step
        total += loss.detach().to(torch.float64) * users.numel()
        n_seen += users.numel()
        n_batches += 1
    mean_loss = (total / max(n_seen, 1)).item()
    check_epoch(model, mean_loss, description, lr=optimizer.param_groups[0]["lr"] if optimizer.param_groups else None)
    return {"loss": mean_loss, "seconds": time.perf_counter() - started, "batches": n_batches}


class Trainer:
    """Train ``model`` on ``dataset`` and select it on the valid split.

    Args:
        model: a registered recommender (built and seeded by the caller).
        dataset: the dataset the model was built for.
        config: a :class:`TrainConfig`.
        run_dir: where config, metrics and checkpoints go (``None``: nothing is written
            and ``resume`` is unavailable).
        resume: continue the run in ``run_dir`` from ``checkpoints/last.pt``.
        callbacks: called with each epoch's record after its checkpoint is written.
        run_config: the resolved config to record in ``config.yaml`` (its ``model`` and
            ``train`` sections are replaced by the actual configs).
        cold_only_test: also rank the test split among the cold test items only
            (``dataset.cold_items("test")``), in ``test_metrics.json`` under ``"cold_only"``
            and in ``test_per_user.npz`` under ``"cold-only/..."``.
        distributed: this process's rank in a data-parallel run (default ``None``: a
            single process); ranks other than 0 write nothing and return no test result.
    """

    def __init__(
        self,
        model: Recommender,
        dataset: Dataset,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        *,
        resume: bool = False,
        callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
        run_config: Mapping[str, Any] | None = None,
        cold_only_test: bool = False,
        distributed: DistributedContext | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.dataset = dataset
        self.dist = distributed
        self.device = self.config.torch_device()
        if distributed is not None:
            self.device = distributed.device(self.device)
        self.model = model.to(self.device)
        if resume and run_dir is None:
            raise ValueError("resume needs a run_dir")
        if distributed is not None and not distributed.is_main:
            run_dir = None  # rank 0 owns the run directory; resume state arrives by broadcast
        self.run_dir = None if run_dir is None else rd.check_run_dir(run_dir, resume)
        self.resume = resume
        self.callbacks = list(callbacks)
        self.cold_only_test = cold_only_test
        self.trainable = bool(getattr(model, "trainable", True))
        self.run_config = {
            "run": {"model": model.name, "dataset": dataset.name},
            **dict(run_config or {}),
            "model": to_dict(model.config),
            "train": to_dict(self.config),
        }
        self.dataset_fingerprint = dataset_fingerprint(dataset)  # what the run is bound to (binding.py)
        self.optimizer: torch.optim.Optimizer | None = None
        self.sampler: BPRSampler | None = None
        self._step_module: torch.nn.Module = self.model  # what run_epoch calls .loss on
        self._rng_ranks: list[dict[str, Any]] | None = None
        self.epoch = 0
        self.best_value = -math.inf
        self.best_epoch = 0
        self.bad_evals = 0
        self.stopped_early = False
        self.history: list[dict[str, Any]] = []
        self._best_model_state: dict[str, torch.Tensor] | None = None
        self.calibration: dict[str, Any] | None = None
        #: the batch size in use: the config's, or auto_batch_size() of the train split
        self.batch_size = self.config.batch_size or auto_batch_size(dataset.train.nnz)
        if self.config.batch_size is None and self.batch_size != AUTO_BATCH_MIN:
            log.info("batch size %d chosen for %d train interactions (train.batch_size=None; set it to override)",
                     self.batch_size, dataset.train.nnz)

    # ------------------------------------------------------------------ public
    def fit(self, evaluate_test: bool = True) -> TrainResult:
        """Train with early stopping on valid, restore the best state, test it once."""
        with self._log_to_run_dir():
            self._start()
            if self.resume:
                self._restore()
            if self.trainable:
                self._train_loop()
            elif not self.history:
                self._select_untrained()
            best_state = self._best_model_state
            if self.dist is not None and self.trainable and self.history:
                best_state = self.dist.broadcast(best_state)  # every rank ends with the selected model
            if best_state is not None:
                self.model.load_state_dict(best_state)
            self._calibrate()
            test, test_cold_only = self._final_test() if evaluate_test and self.is_main else (None, None)
        best_record = next((r for r in self.history if r["epoch"] == self.best_epoch and "valid" in r), {})
        return TrainResult(
            metric=self.config.metric,
            best_epoch=self.best_epoch,
            best_value=self.best_value,
            valid=dict(best_record.get("valid", {})),
            test=test,
            epochs_run=self.epoch,
            stopped_early=self.stopped_early,
            history=list(self.history),
            run_dir=self.run_dir,
            test_cold_only=test_cold_only,
        )

    # ------------------------------------------------------------------ phases
    def _start(self) -> None:
        cfg = self.config
        if self.dataset.valid.nnz == 0:
            raise ValueError(
                f"{self.dataset.name}: the valid split is empty; model selection and early stopping "
                f"need held-out validation interactions (load the dataset with a split that has them)"
            )
        seed_everything(cfg.seed, deterministic=cfg.deterministic)
        if self.trainable:
            params = [p for p in self.model.parameters() if p.requires_grad]
            if not params:
                raise ValueError(
                    f"{type(self.model).__name__} has no trainable parameters; set trainable = False "
                    f"on the class if it is meant to be evaluated without training"
                )
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            pool = None
            if cfg.negatives == "train-items":
                pool = np.flatnonzero(self.dataset.items_in_train)
                log.info("negatives drawn from the %d of %d items with train interactions",
                         pool.size, self.dataset.n_items)
            self.sampler = BPRSampler(self.dataset.train, seed=cfg.seed, negative_items=pool)
            self._step_module = step_module(self.model, cfg, self.device, self.dist)
            if self.dist is not None:
                self.dist.seed(cfg.seed)
                self.sampler = self.dist.shard(self.sampler)
        if not self.resume:
            self._write_run_files()

    def _write_run_files(self) -> None:
        if self.run_dir is not None:
            rd.write_yaml(self.run_dir / rd.CONFIG_FILE, self.run_config)
            binding.record(self.run_dir, self.dataset_fingerprint)
            env_path = self.run_dir / rd.ENVIRONMENT_FILE
            environment = rd.environment_info()
            if self.resume and env_path.exists():
                # keep the first start's record; list every resume after it
                first = json.loads(env_path.read_text(encoding="utf-8"))
                first.setdefault("resumes", []).append(environment)
                environment = first
            atomic_write_json(env_path, environment)

    def _restore(self) -> None:
        # _start() built fresh optimizer / sampler objects; overwrite their state
        path = self.run_dir / rd.LAST_CHECKPOINT if self.run_dir is not None else None
        state = None
        if path is not None:
            state = load_checkpoint(path)
            require(state, ("train_config", "model_name", "model_config", "model", "rng", "epoch", "history"), path)
        if self.dist is not None:  # rank 0 read and checked it; the others receive it
            state = self.dist.broadcast(state)
        saved = state["train_config"]
        current = to_dict(self.config)
        defaults = to_dict(TrainConfig())  # keys added after the checkpoint was written: their defaults
        changed = sorted(k for k in current
                         if k not in RESUMABLE_CHANGES and saved.get(k, defaults.get(k)) != current[k])
        if changed:
            raise RunMismatchError(
                f"{self.run_dir}: cannot resume with a different train config for {changed} "
                f"(checkpoint: {[saved.get(k) for k in changed]}, now: {[current[k] for k in changed]})"
            )
        if state["model_name"] != self.model.name or state["model_config"] != to_dict(self.model.config):
            raise RunMismatchError(f"{self.run_dir}: the checkpoint is for model {state['model_name']!r} with config "
                             f"{state['model_config']}, not {self.model.name!r} with {to_dict(self.model.config)}")
        load_model_state(self.model, state["model"], path, self.dataset.name)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
        if self.dist is not None:
            self.dist.restore_rng(state)
        else:
            restore_rng_state(state["rng"])
        self.epoch, self.best_value, self.best_epoch = state["epoch"], state["best_value"], state["best_epoch"]
        self.bad_evals, self.stopped_early = state["bad_evals"], state["stopped_early"]
        self.history = list(state["history"])
        if self.run_dir is None:
            return
        self._write_run_files()  # only now: a refused resume must not rewrite the run's config
        best_path = self.run_dir / rd.BEST_CHECKPOINT
        if best_path.exists():
            self._best_model_state = load_checkpoint(best_path)["model"]
        rd.write_jsonl(self.run_dir / rd.METRICS_FILE, self.history)
        log.info("resumed %s at epoch %d (best %s %.4f at epoch %d)", self.run_dir, self.epoch,
                 self.config.metric, self.best_value, self.best_epoch)

    def _train_loop(self) -> None:
        cfg = self.config
        assert self.optimizer is not None and self.sampler is not None
        while self.epoch < cfg.epochs and not self.stopped_early:
            self.epoch += 1
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            hook_started = time.perf_counter()
            self.model.on_epoch_start(self.epoch, epoch_generator(cfg.seed, self.epoch))
            hook_seconds = time.perf_counter() - hook_started
            try:
                stats = run_epoch(self._step_module, self.optimizer, self.sampler, self.batch_size,
                                  progress=cfg.progress and self.is_main, device=self.device,
                                  description=f"epoch {self.epoch}")
            except TrainingDivergedError as exc:
                raise TrainingDivergedError(f"{exc}; {self._kept_checkpoints()}") from None
            if self.dist is not None:
                stats["loss"] = self.dist.mean(stats["loss"])
            record: dict[str, Any] = {"epoch": self.epoch, "loss": stats["loss"],
                                      "train_seconds": hook_seconds + stats["seconds"]}
            if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
                self._validate_into(record)
            self._end_epoch(record)

    def _select_untrained(self) -> None:
        record: dict[str, Any] = {"epoch": 0, "loss": None, "train_seconds": 0.0}
        self._validate_into(record)
        self._end_epoch(record)

    def _validate_into(self, record: dict[str, Any]) -> None:
        """Evaluate the valid split, update the early-stopping state, save the best model."""
        cfg = self.config
        outcome = None
        if self.is_main:
            result = evaluate(self.model, self.dataset, split="valid", ks=cfg.ks, mask=cfg.valid_mask,
                              block_size=cfg.eval_block_size)
            outcome = (result.metrics, result.seconds)
        if self.dist is not None:  # every rank applies the same rule to rank 0's outcome
            outcome = self.dist.broadcast(outcome)
        metrics, seconds = outcome
        value = metrics[cfg.metric]
        improved = value > self.best_value + cfg.min_delta
        if improved:
            self.best_value, self.best_epoch, self.bad_evals = value, self.epoch, 0
            if self.is_main:
                self._best_model_state = {k: v.detach().to("cpu", copy=True)
                                          for k, v in self.model.state_dict().items()}
        else:
            self.bad_evals += 1
            self.stopped_early = self.bad_evals >= cfg.patience
        record.update(valid=metrics, eval_seconds=seconds, improved=improved)
        if improved and self.run_dir is not None:
            save_checkpoint(self.run_dir / rd.BEST_CHECKPOINT, self._checkpoint_state(record))

    def _end_epoch(self, record: dict[str, Any]) -> None:
        record.update(
            best_epoch=self.best_epoch,
            best_value=self.best_value if math.isfinite(self.best_value) else None,
            bad_evals=self.bad_evals,
            peak_rss_mb=_peak_rss_mb(),
            peak_gpu_mb=torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None,
        )
        self.history.append(record)
        if self.dist is not None:
            self._rng_ranks = self.dist.capture_rng()  # a collective: every rank's state, on rank 0
        metric = record.get("valid", {}).get(self.config.metric)
        log.log(
            logging.INFO if self.is_main else logging.DEBUG,
            "epoch %d: loss %s  valid %s %s (best %.4f @ %d)  train %.2fs  eval %.2fs  peak RSS %.0f MB%s",
            record["epoch"], "-" if record["loss"] is None else f"{record['loss']:.5f}", self.config.metric,
            "-" if metric is None else f"{metric:.4f}", self.best_value, self.best_epoch,
            record["train_seconds"], record.get("eval_seconds") or 0.0, record["peak_rss_mb"] or 0.0,
            "" if record["peak_gpu_mb"] is None else f"  peak GPU {record['peak_gpu_mb']:.0f} MB",
        )
        if self.run_dir is not None:
            rd.write_jsonl(self.run_dir / rd.METRICS_FILE, self.history)
            save_checkpoint(self.run_dir / rd.LAST_CHECKPOINT, self._checkpoint_state(record))
        if self.stopped_early and self.is_main:
            log.info("early stop after epoch %d: no %s improvement in %d evaluations",
                     self.epoch, self.config.metric, self.config.patience)
        for callback in self.callbacks if self.is_main else ():
            callback(record)

    def _calibrate(self) -> None:
        """The model's post-training calibration, chosen on the VALID split (never test).

        Each candidate of ``model.calibration_candidates()`` is applied to the restored best
        state and the valid split evaluated; the best value wins (the neutral first candidate
        on ties) -- or, with ``calibration_tolerance`` t > 0, the candidate with the best
        cold-item value among those within (1 - t) of the best -- and is kept in the model's
        state -- and in ``best.pt``, so that every later path (``mmgcn evaluate``,
        ``recommend``) ranks with it -- and ``calibration.json``. In a data-parallel run
        rank 0 evaluates the candidates and every rank applies its choice.
        """
        candidates = self.model.calibration_candidates()
        if not candidates:
            return
        cfg = self.config
        tolerance = cfg.calibration_tolerance
        tried = []
        if self.is_main:
            for values, emb in zip(candidates, self.model.calibrated_embeddings(candidates), strict=True):
                result = evaluate(self.model, self.dataset, split="valid", ks=cfg.ks, mask=cfg.valid_mask,
                                  block_size=cfg.eval_block_size, warm_cold=tolerance > 0, emb=emb)
                entry = {"values": dict(values), "valid": result.metrics[cfg.metric]}
                if tolerance > 0:
                    cold = result.groups.get("cold")
                    entry["valid_cold"] = cold.metrics[cfg.metric] if cold is not None and cold.n_users else 0.0
                tried.append(entry)
        if self.dist is not None:
            tried = self.dist.broadcast(tried)
        best = tried[0]
        for entry in tried[1:]:
            if entry["valid"] > best["valid"] + cfg.min_delta:
                best = entry
        if tolerance > 0:
            floor = best["valid"] * (1.0 - tolerance)
            best = max((t for t in tried if t["valid"] >= floor), key=lambda t: t["valid_cold"])
        self.model.apply_calibration(best["values"])
        log.info("calibration chosen on valid %s%s: %s (%.4f; tried %s)", cfg.metric,
                 f" (cold items, within {tolerance:.0%} of the best)" if tolerance > 0 else "", best["values"],
                 best["valid"], ", ".join(f"{t['values']}: {t['valid']:.4f}" for t in tried))
        self.calibration = {"metric": f"valid {cfg.metric}", "chosen": best, "tried": tried,
                            **({"tolerance": tolerance} if tolerance > 0 else {})}
        self._best_model_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / rd.CALIBRATION_FILE, self.calibration)
            best_path = self.run_dir / rd.BEST_CHECKPOINT
            if best_path.exists():
                state = load_checkpoint(best_path)
                state["model"] = self.model.state_dict()
                save_checkpoint(best_path, state)

    def _final_test(self) -> tuple[EvalResult, EvalResult | None]:
        """The one place that reads the test split: after selection, on the best state.

        Returns the all-items test evaluation and, with ``cold_only_test``, the ranking among
        the cold test items only (``None`` when the test split has no cold item).
        """
        cfg = self.config
        # one forward pass for both rankings, with the model's item-representation policy
        emb = None
        if self.cold_only_test:
            with torch.no_grad():
                emb = self.model.ranking_embed()
        result = evaluate(self.model, self.dataset, split="test", ks=cfg.ks, mask=cfg.test_mask,
                          block_size=cfg.eval_block_size, warm_cold=cfg.warm_cold, emb=emb)
        log.info("test of the epoch-%d model (selected by valid %s = %.4f): %s",
                 self.best_epoch, cfg.metric, self.best_value, result.summary())
        cold_only = None
        if self.cold_only_test:
            cold_items = self.dataset.cold_items("test")
            if cold_items.size == 0:
                log.warning("%s: no test item lacks train edges; no cold-only ranking", self.dataset.name)
            else:
                cold_only = evaluate(self.model, self.dataset, split="test", ks=cfg.ks, mask=cfg.test_mask,
                                     block_size=cfg.eval_block_size, candidate_items=cold_items, emb=emb)
                log.info("test among the %d cold test items only: %s", cold_items.size, cold_only.summary())
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / rd.TEST_METRICS_FILE, {
                "selected_by": f"valid {cfg.metric}",
                "best_epoch": self.best_epoch,
                "best_value": self.best_value,
                "model": self.model.name,
                "dataset": self.dataset.name,
                **result.to_dict(),
                **({"cold_only": cold_only.to_dict()} if cold_only is not None else {}),
            })
            arrays = result.per_user_arrays()
            if cold_only is not None:
                arrays.update(cold_only.per_user_arrays(prefix="cold-only/"))
            rd.write_npz(self.run_dir / rd.TEST_PER_USER_FILE, arrays)
        return result, cold_only

    # ------------------------------------------------------------------ helpers
    @property
    def is_main(self) -> bool:
        """Whether this process evaluates and writes (always, unless a rank other than 0)."""
        return self.dist is None or self.dist.is_main

    def _kept_checkpoints(self) -> str:
        """What a diverged run leaves behind (nothing of the diverged epoch is saved)."""
        if self.run_dir is None:
            return "nothing was saved (no run directory)"
        if self.epoch <= 1:
            return f"no checkpoint was written in {self.run_dir}"
        return (f"{self.run_dir / rd.LAST_CHECKPOINT} (epoch {self.epoch - 1}) and the best one "
                f"(epoch {self.best_epoch}) are kept")

    def _checkpoint_state(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model_name": self.model.name,
            "model_config": to_dict(self.model.config),
            "train_config": to_dict(self.config),
            "run_config": self.run_config,
            "dataset_fingerprint": self.dataset_fingerprint,
            "model": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
            "rng": capture_rng_state(),
            **({"rng_ranks": self._rng_ranks} if self._rng_ranks is not None else {}),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_evals": self.bad_evals,
            "stopped_early": self.stopped_early,
            "history": [*self.history] if self.history and self.history[-1] is record else [*self.history, dict(record)],
        }

    @contextlib.contextmanager
    def _log_to_run_dir(self) -> Iterator[None]:
        if self.run_dir is None:
            yield
            return
        handler = logging.FileHandler(self.run_dir / rd.LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_logger = logging.getLogger("mmgcn")
        package_logger.addHandler(handler)
        try:
            yield
        finally:
            package_logger.removeHandler(handler)
            handler.close()


__all__ = ["RESUMABLE_CHANGES", "TrainConfig", "TrainResult", "Trainer", "run_epoch"]
