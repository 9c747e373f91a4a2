"""``mmgcn train`` and ``mmgcn evaluate``.

``mmgcn train --model NAME --dataset NAME [--data-dir D] [--config file.yaml]
[--set key=value ...] [--run-dir DIR] [--resume] [--seed N]`` trains one model with early
stopping on the validation split and prints the test metrics of the selected checkpoint.

A config file has up to four sections; every key is checked (unknown keys are errors)::

    run:     {model: lightgcn, dataset: tiktok, data_dir: null}   # what --model/--dataset set
    model:   {dim: 64, num_layers: 2}                             # the model's Config fields
    train:   {epochs: 300, patience: 20, lr: 1.0e-3}              # TrainConfig fields
    dataset: {convention: mmrec}                                  # load_dataset keyword arguments

Precedence, lowest first: dataclass defaults < the model class's ``train_defaults`` <
``--config`` file < ``--set section.key=value`` < ``--seed`` / ``--model`` / ``--dataset``.
The run directory's ``config.yaml`` is such a file, fully resolved, so
``mmgcn train --config RUN/config.yaml`` repeats a run. ``--resume --run-dir RUN`` continues
an interrupted run from its last checkpoint with its recorded config.

Data-parallel training: ``torchrun --nproc-per-node N -m mmgcn train ...`` (the same
arguments) trains with DistributedDataParallel, one rank per process; rank 0 validates,
writes the run directory and prints (see :mod:`mmgcn.train.distributed`).

``mmgcn evaluate RUN_DIR [--split test] [--checkpoint best]`` re-evaluates a run's
checkpoint, by default the selected (best validation) one on the test split.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmgcn.config import ConfigError, apply_overrides, from_dict, load_yaml, merge, to_dict
from mmgcn.errors import RunMismatchError

log = logging.getLogger(__name__)

SECTIONS = ("run", "model", "train", "dataset")
RUN_KEYS = ("model", "dataset", "data_dir")
#: accept data that differ from a run's (mmgcn.train.binding.OVERRIDE_FLAG; kept here so that
#: building the parser imports no torch)
OVERRIDE_FLAG = "--allow-data-change"


def load_dataset(name: str, data_dir: str | None = None, **kwargs: Any):
    """Load dataset ``name`` through the data registry, checking the keyword names first."""
    from mmgcn.data.registry import load_dataset as registry_load

    parameters = inspect.signature(registry_load).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        valid = sorted(k for k in parameters if k not in ("name", "data_dir"))
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ConfigError(f"dataset: unknown key(s) {unknown} for load_dataset; valid keys are {valid}")
    return registry_load(name, data_dir=data_dir, **kwargs)


# ---------------------------------------------------------------------- config resolution
def _check_sections(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {unknown}; a config has sections {list(SECTIONS)} "
            f"and keys go under them (e.g. --set train.epochs=5)"
        )
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        value = data.get(section) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: section '{section}' must be a mapping, got {value!r}")
        out[section] = dict(value)
    bad_run = sorted(set(out["run"]) - set(RUN_KEYS))
    if bad_run:
        raise ConfigError(f"{where}: unknown key(s) {bad_run} in section 'run'; valid keys are {list(RUN_KEYS)}")
    return out


def _recorded_sections(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """A run directory's config.yaml: the four sections; extra sections other tools recorded
    there (e.g. ``bench``) are ignored."""
    return _check_sections({k: v for k, v in data.items() if k in SECTIONS}, where)


def resolve_config(
    model: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Merge the config layers into ``{run, model, train, dataset}`` (not yet type-checked).

    ``base`` (a run's recorded config, for ``--resume``) sits below the file.
    """
    from mmgcn.models.base import model_class

    layers = _recorded_sections(base or {}, "recorded config")
    if config_file is not None:
        layers = merge(layers, _check_sections(load_yaml(config_file), str(config_file)))
    layers = _check_sections(apply_overrides(layers, overrides), "--set")
    run = layers["run"]
    for key, value in (("model", model), ("dataset", dataset), ("data_dir", data_dir)):
        if value is not None:
            run[key] = value
    if not run.get("model") or not run.get("dataset"):
        raise ConfigError("name the model and the dataset: --model NAME --dataset NAME (or run: {model, dataset} in --config)")
    train_defaults = dict(getattr(model_class(run["model"]), "train_defaults", {}) or {})
    layers["train"] = merge(train_defaults, layers["train"])
    if seed is not None:
        layers["train"]["seed"] = seed
    run.setdefault("data_dir", None)
    return layers


# ---------------------------------------------------------------------- output
def format_metrics(result: Any, names: tuple[str, ...] = ("recall", "ndcg", "precision", "hit_rate", "map", "mrr")) -> str:
    """A metrics table: one row per metric, one column per K; warm / cold rows below."""
    ks = result.ks
    header = f"{'':<12}" + "".join(f"{'@' + str(k):>10}" for k in ks)
    lines = [header]
    for name in (*names, "coverage"):
        lines.append(f"{name:<12}" + "".join(f"{result.metrics[f'{name}@{k}']:>10.4f}" for k in ks))
    for group_name, group in result.groups.items():
        if group.n_users == 0:
            lines.append(f"{group_name}: no user has a {group_name} held-out item")
            continue
        lines.append(f"{group_name} items ({group.n_users} users, {int(group.n_positives.sum())} interactions):")
        for name in ("recall", "ndcg"):
            lines.append(f"  {name:<10}" + "".join(f"{group.metrics[f'{name}@{k}']:>10.4f}" for k in ks))
    return "\n".join(lines)


# ---------------------------------------------------------------------- commands
def distributed_context(device: str) -> Any:
    """The rank's :class:`~mmgcn.train.distributed.DistributedContext` under torchrun (the
    process group joined now, left at exit), ``None`` in a plain process."""
    import atexit

    import torch.distributed

    from mmgcn.train.distributed import DistributedContext

    context = DistributedContext.from_env(device)
    if context is not None:
        atexit.register(lambda: torch.distributed.is_initialized() and torch.distributed.destroy_process_group())
    return context


def run_train(args: argparse.Namespace) -> int:
    from mmgcn.data.fingerprint import dataset_fingerprint
    from mmgcn.models.base import build_config, build_model
    from mmgcn.train import binding
    from mmgcn.train import run_dir as rd
    from mmgcn.train.config import check_device
    from mmgcn.train.trainer import TrainConfig, Trainer
    from mmgcn.utils.seed import seed_everything

    base = None
    if args.resume:
        if args.run_dir is None:
            raise ConfigError("--resume needs --run-dir DIR (the run to continue)")
        recorded = Path(args.run_dir) / rd.CONFIG_FILE
        if not recorded.is_file():
            raise FileNotFoundError(f"{recorded}: no recorded config to resume (is {args.run_dir} a run directory?)")
        base = load_yaml(recorded)
    layers = resolve_config(args.model, args.dataset, args.data_dir, args.config, args.set or [], args.seed, base)
    run = layers["run"]
    train_config = from_dict(TrainConfig, layers["train"], where="train")
    model_config = build_config(run["model"], layers["model"])
    check_device(train_config.device)  # validate before loading data or training
    context = distributed_context(train_config.device)
    resolved = {"run": run, "model": to_dict(model_config), "train": to_dict(train_config), "dataset": layers["dataset"]}
    if args.resume:
        _check_resume_config(Path(args.run_dir), base or {}, resolved, args.allow_data_change)
    dataset = load_dataset(run["dataset"], run["data_dir"], **layers["dataset"])
    if args.resume:
        binding.check_data(args.run_dir, dataset_fingerprint(dataset), action="resume",
                           allow_change=args.allow_data_change)
    seed_everything(train_config.seed, deterministic=train_config.deterministic)
    model = build_model(run["model"], dataset, model_config)
    run_dir = Path(args.run_dir) if args.run_dir else rd.default_run_dir(run["model"], dataset.name)
    try:
        trainer = Trainer(model, dataset, train_config, run_dir, resume=args.resume, run_config=resolved,
                          distributed=context)
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from exc
    if context is not None and not context.is_main:
        trainer.fit()  # rank 0 validates, writes and prints
        return 0
    print(f"run directory: {run_dir}" + (f" ({context.world_size} ranks, {context.backend})" if context else ""))
    result = trainer.fit()
    print(
        f"{run['model']} on {dataset.name}: best epoch {result.best_epoch} of {result.epochs_run}"
        f"{' (early stop)' if result.stopped_early else ''}, valid {result.metric} = {result.best_value:.4f}"
    )
    test = result.test
    print(f"test, mask {'+'.join(test.mask)}, {test.n_users} users ({test.n_users_skipped} without test items):")
    print(format_metrics(test))
    return 0


def _check_resume_config(run_dir: Path, recorded: Mapping[str, Any], resolved: Mapping[str, Any],
                         allow_data_change: bool) -> None:
    """Refuse a resume whose model / dataset sections differ from the run's recorded config.

    A different dataset section (e.g. ``--set dataset.split=random``) is accepted with
    ``--allow-data-change`` (the data check then records it); a different model never is.
    """
    from mmgcn.models.base import build_config
    from mmgcn.train.binding import config_differences

    recorded_run = dict(recorded.get("run") or {})
    model_name = recorded_run.get("model")
    recorded_model = dict(recorded.get("model") or {})
    if model_name == resolved["run"].get("model"):
        recorded_model = to_dict(build_config(model_name, recorded_model))  # defaults filled in, as `resolved`
    hard = config_differences({"run": recorded_run, "model": recorded_model}, resolved, sections=("run", "model"))
    soft = config_differences(recorded, resolved, sections=("dataset",))
    if hard or (soft and not allow_data_change):
        fix = "; resume with the run's own settings (drop the overrides)"
        if soft and not hard:
            fix += f", or pass {OVERRIDE_FLAG} to continue on other data (recorded in the run)"
        raise RunMismatchError(f"{run_dir}: refusing to resume: the config differs from the run's -- "
                               + "; ".join(hard + soft) + fix)


def run_evaluate(args: argparse.Namespace) -> int:
    from mmgcn.eval.evaluator import evaluate
    from mmgcn.train.loading import load_run
    from mmgcn.train.trainer import TrainConfig

    if args.ks and any(k < 1 for k in args.ks):
        raise ConfigError(f"--ks must be positive integers, got {args.ks}")
    if args.mask is not None:
        bad = [m for m in args.mask.split("+") if m and m not in ("train", "valid")]
        if bad:
            raise ConfigError(f"--mask names {bad}; mask 'train' or 'train+valid' (the test split is never masked)")
    loaded = load_run(args.run_dir, args.checkpoint, data_dir=args.data_dir, action="evaluate",
                      allow_data_change=args.allow_data_change)
    run_dir, dataset, model = loaded.run_dir, loaded.dataset, loaded.model
    run = loaded.config["run"]
    train_config = from_dict(TrainConfig, dict(loaded.config.get("train") or {}), where=f"{run_dir}: train")
    ks = tuple(args.ks) if args.ks else train_config.ks
    if args.mask is not None:
        mask = tuple(m for m in args.mask.split("+") if m)
    else:
        mask = train_config.test_mask if args.split == "test" else train_config.valid_mask
    candidates = dataset.cold_items(args.split) if args.cold_only else None
    result = evaluate(model, dataset, split=args.split, ks=ks, mask=mask, block_size=train_config.eval_block_size,
                      candidate_items=candidates, warm_cold=not args.cold_only)
    mismatch = {"data_differences": loaded.data_differences, "accepted_with": OVERRIDE_FLAG} if loaded.data_differences else {}
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "checkpoint": args.checkpoint, "epoch": loaded.epoch,
                          **mismatch, **result.to_dict()}, indent=2, sort_keys=True))
        return 0
    if mismatch:
        print(f"WARNING: evaluated on data that differ from the run's ({OVERRIDE_FLAG}): "
              + "; ".join(loaded.data_differences))
    print(
        f"{run['model']} on {dataset.name}, {args.checkpoint} checkpoint (epoch {loaded.epoch}), "
        f"split {args.split}, mask {'+'.join(mask) or 'none'}"
        f"{', cold items only' if args.cold_only else ''}: {result.n_users} users "
        f"({result.n_users_skipped} skipped), {result.n_candidates} candidate items"
    )
    print(format_metrics(result))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train a model with early stopping on valid; report test",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--model", help="registered model name (see mmgcn.models.available_models())")
    train.add_argument("--dataset", help="dataset name, e.g. tiktok, amazon-baby, ml-100k or one you imported "
                                         "(`mmgcn datasets list`)")
    train.add_argument("--data-dir", help="raw data root (default: $MMGCN_DATA)")
    train.add_argument("--config", help="YAML config file with run/model/train/dataset sections")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one key, e.g. train.epochs=5 or model.num_layers=2 (repeatable)")
    train.add_argument("--run-dir", help="run directory (default: runs/<dataset>-<model>-<time>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    train.add_argument("--seed", type=int, help="random seed (sets train.seed)")
    train.add_argument(OVERRIDE_FLAG, action="store_true",
                       help="with --resume: continue even though the data or the dataset config differ from "
                            "the run's (recorded in RUN/dataset.json)")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a trained run's checkpoint",
        description="Full-ranking evaluation of a run directory's checkpoint (default: best on test).",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'mmgcn train'")
    evaluate.add_argument("--split", choices=("valid", "test"), default="test")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best")
    evaluate.add_argument("--ks", type=int, nargs="+", help="cut-offs (default: the run's train.ks)")
    evaluate.add_argument("--mask", help="splits to mask, joined by '+', e.g. 'train' or 'train+valid' "
                                         "(default: the run's test_mask / valid_mask)")
    evaluate.add_argument("--cold-only", action="store_true", help="rank only items without train edges")
    evaluate.add_argument("--data-dir", help="raw data root (default: the one the run recorded)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(OVERRIDE_FLAG, action="store_true",
                          help="evaluate even though the data differ from the run's (recorded in the output)")
    evaluate.set_defaults(func=run_evaluate)
