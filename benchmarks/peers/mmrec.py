"""Side by side with MMRec's own code: same split, hyper-parameters and seed; quality and s/epoch.

    python benchmarks/peers/mmrec.py --mmrec /work/peers/MMRec --dataset tiktok --models freedom,lattice
    python benchmarks/peers/mmrec.py --mmrec PATH --models freedom --set freedom.dropout=0.9 --epochs 50
    python benchmarks/peers/mmrec.py --mmrec PATH --models mmgcn-faithful,lightgcn --speed-only

For every model of the table :data:`PEERS`, in one run: the dataset is written in MMRec's
layout (``<mmrec>/data/<name>/``: ``<name>.inter`` + ``*_feat.npy``, as ``mmgcn datasets
convert NAME --to mmrec``) with a dataset config (``<mmrec>/src/configs/dataset/<name>.yaml``)
that puts our modalities in MMRec's two slots (``v`` = vision, ``t`` = text: TikTok's
acoustic features go in the text slot); MMRec's model is trained by MMRec's own
``quick_start`` with one value per hyper-parameter; then ours is trained by our
:class:`~mmgcn.train.Trainer` with the same values. Printed: valid / test Recall@20 and
NDCG@20 at the best-validation epoch, epochs, training seconds per epoch (MMRec's own
``training [time: ...]`` log lines, ours from the trainer's history, both including the
per-epoch graph work) and seconds per validation pass, then ours / MMRec's ratios. Seconds
per epoch are the mean over each full run and, less disturbed by other load on a shared
machine, the minimum over ``--timing-rounds`` short runs of both codes taken in turns
(``--timing-epochs`` epochs each; the ratio row uses these).

Protocol (MMRec's): train items masked when validating and testing (valid items are not
masked at test), users without train interactions left out of valid / test (MMRec's
``filter_out_cod_start_users``; the script drops them from our copy of the split too),
selection on validation Recall@20, early stopping after MMRec's ``stopping_step`` (20)
evaluations without improvement (ours: patience 21, the same stop). Same seed number on
both sides (not the same random streams: different samplers and initialisers).

Speed (``--speed-only``: the timing runs alone, no runs to early stopping): for the same
architecture on both sides -- our ``mmgcn-faithful`` against MMRec's MMGCN (3 layers,
visual projected to 256-d, acoustic raw, 64-d, IDs and preferences untrained, batch 2048)
and our ``lightgcn`` against MMRec's LightGCN -- seconds per training epoch and per
validation pass (a full ranking of the valid users over all items, train items masked,
Recall / NDCG / ... at 10, 20, 50 on both sides), the minimum over the interleaved timing
runs, printed as MMRec / ours speed-ups against the targets of :data:`SPEED_TARGETS`.

Adding a model: one :class:`Peer` entry naming MMRec's class, its hyper-parameters (MMRec's
names and values) and how they map onto our config.

Compatibility fixes (applied by :func:`apply_compat_fixes` to the local MMRec checkout
only, idempotently, printed when applied; MMRec's code is never copied here): MMRec
(commit e775373) uses ``np.float`` (removed in numpy 1.24) in ``src/utils/metrics.py`` ->
``float``; and ``A._update(data_dict)`` on a ``scipy.sparse.dok_matrix`` (a private method
removed in scipy 1.12) -> one vectorised public assignment ``A[rows, cols] = values``; and, to
run on CPU, ``self.<graph> = <tensor>.cuda()`` in model constructors (LATTICE's frozen
graphs) -> ``.to(self.device)`` (the device MMRec's config chose). MMRec's
``utils/dataset.py`` imports ``lmdb`` for raw-image datasets only; when ``lmdb`` is not
installed the runner registers an empty stand-in module (these runs never call it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mmgcn.config import parse_override  # noqa: E402
from mmgcn.data.dataset import DataError, Dataset  # noqa: E402
from mmgcn.data.readers.mmrec import write_mmrec  # noqa: E402
from mmgcn.data.registry import load_dataset  # noqa: E402
from mmgcn.models import build_model  # noqa: E402
from mmgcn.train.trainer import TrainConfig, Trainer  # noqa: E402

# ---------------------------------------------------------------------- the table
Slots = Mapping[str, str]  # MMRec slot ("v" / "t") -> our modality name


@dataclass(frozen=True)
class Peer:
    """One model run by both codes.

    Attributes:
        ours: our registry name.
        mmrec: MMRec's model class (``src/models/<lower>.py``).
        params: MMRec hyper-parameters (MMRec's names), one value each; grids in MMRec's
            YAML are replaced by these values.
        to_ours: maps ``(params, slots)`` to ``(our model config, our train overrides)``.
        note: what differs between the two implementations.
    """

    ours: str
    mmrec: str
    params: dict[str, Any]
    to_ours: Callable[[Mapping[str, Any], Slots], tuple[dict[str, Any], dict[str, Any]]]
    note: str = ""


def _freedom(p: Mapping[str, Any], slots: Slots) -> tuple[dict[str, Any], dict[str, Any]]:
    weights = {slots["v"]: p["mm_image_weight"], slots["t"]: 1.0 - p["mm_image_weight"]}
    config = {"dim": p["embedding_size"], "knn_k": p["knn_k"], "item_layers": p["n_mm_layers"],
              "num_layers": p["n_ui_layers"], "prune_ratio": p["dropout"], "projection_weight": p["reg_weight"],
              "modality_weights": weights, "reg_weight": 0.0, "tune_features": True, "feature_transform": "none"}
    return config, {"lr": p["learning_rate"]}


def _lattice(p: Mapping[str, Any], slots: Slots) -> tuple[dict[str, Any], dict[str, Any]]:
    config = {"dim": p["embedding_size"], "feature_dim": p["feat_embed_dim"], "knn_k": p["knn_k"],
              "item_layers": p["n_layers"], "num_layers": len(p["weight_size"]), "frozen_weight": p["lambda_coeff"],
              "reg_weight": p["reg_weight"], "ui_norm": "left+self", "tune_features": True, "feature_transform": "none"}
    return config, {"lr": p["learning_rate"]}


def _lgmrec(p: Mapping[str, Any], slots: Slots) -> tuple[dict[str, Any], dict[str, Any]]:
    # MMRec sums its InfoNCE over the batch's rows, ours averages it: the same term at
    # cl_weight x batch size (exact on every full batch; only a short last batch differs)
    config = {"dim": p["embedding_size"], "num_layers": p["n_ui_layers"], "modality_layers": p["n_mm_layers"],
              "hyper_layers": p["n_hyper_layer"], "num_hyperedges": p["hyper_num"], "keep_rate": p["keep_rate"],
              "alpha": p["alpha"], "cl_weight": p["cl_weight"] * MMREC_COMMON["train_batch_size"],
              "reg_weight": p["reg_weight"], "feature_transform": "none"}
    return config, {"lr": p["learning_rate"]}


def _mmgcn_faithful(p: Mapping[str, Any], slots: Slots) -> tuple[dict[str, Any], dict[str, Any]]:
    # MMRec's port hard-codes 3 layers, projects only the vision slot (to 256-d) and leaves
    # IDs and preferences untrained: mmgcn-faithful's defaults
    config = {"dim": p["embedding_size"], "reg_weight": p["reg_weight"], "num_layers": 3, "latent_dim": 256,
              "project_modalities": [slots["v"]]}
    return config, {"lr": p["learning_rate"]}


def _lightgcn(p: Mapping[str, Any], slots: Slots) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"dim": p["embedding_size"], "num_layers": p["n_layers"], "reg_weight": p["reg_weight"]}, \
        {"lr": p["learning_rate"]}


PEERS: dict[str, Peer] = {
    "mmgcn-faithful": Peer(
        "mmgcn-faithful", "MMGCN",
        {"embedding_size": 64, "n_layers": 3, "reg_weight": 1e-4, "learning_rate": 1e-3},
        _mmgcn_faithful,
        "the same architecture; MMRec's n_layers is ignored by its port (3 layers hard-coded); MMRec "
        "propagates edge-wise (PyG MessagePassing over all nodes, every batch), ours with CSR products and "
        "the last layer on the batch's nodes only; MMRec's L2 is a mean over the batch's rows, ours a sum / 2B",
    ),
    "lightgcn": Peer(
        "lightgcn", "LightGCN",
        {"embedding_size": 64, "n_layers": 3, "reg_weight": 1e-4, "learning_rate": 1e-3},
        _lightgcn,
        "the same model (symmetric-normalised propagation, layer mean, L2 on the batch's layer-0 embeddings)",
    ),
    "freedom": Peer(
        "freedom", "FREEDOM",
        {"embedding_size": 64, "feat_embed_dim": 64, "knn_k": 10, "n_mm_layers": 1, "n_ui_layers": 2,
         "mm_image_weight": 0.1, "dropout": 0.8, "reg_weight": 1e-3, "learning_rate": 1e-3},
        _freedom,
        "ours samples the pruned graph by exponential keys (same distribution as torch.multinomial)",
    ),
    "lgmrec": Peer(
        "lgmrec", "LGMRec",
        {"embedding_size": 64, "feat_embed_dim": 64, "cf_model": "lightgcn", "n_ui_layers": 2, "n_mm_layers": 2,
         "n_hyper_layer": 1, "hyper_num": 4, "keep_rate": 0.5, "alpha": 0.3, "cl_weight": 1e-4,
         "reg_weight": 1e-6, "learning_rate": 1e-3},
        _lgmrec,
        "MMRec keeps the Gumbel noise of the hyperedge assignments when it evaluates (every validation "
        "draws afresh), ours evaluates without noise; MMRec's InfoNCE is a batch sum, ours a mean "
        "(cl_weight scaled by the batch size)",
    ),
    "lattice": Peer(
        "lattice", "LATTICE",
        {"embedding_size": 64, "feat_embed_dim": 64, "weight_size": [64, 64], "knn_k": 10, "n_layers": 1,
         "lambda_coeff": 0.9, "cf_model": "lightgcn", "reg_weight": 1e-4, "learning_rate": 1e-3},
        _lattice,
        "MMRec's LATTICE config decays the learning rate by 0.96 every 50 epochs; both run at a constant "
        "rate here (ours has no schedule); ours clips negative learned kNN weights at 0",
    ),
}


@dataclass(frozen=True)
class DatasetEntry:
    """How a dataset is loaded and which of its modalities fill MMRec's two feature slots."""

    load_kwargs: dict[str, Any] = field(default_factory=dict)
    slots: dict[str, str] = field(default_factory=dict)


DATASETS: dict[str, DatasetEntry] = {
    # the files' split (valid = valMat, test = tstMat); acoustic features in MMRec's text slot
    "tiktok": DatasetEntry({"convention": "files"}, {"v": "image", "t": "audio"}),
    "ml-100k": DatasetEntry({}, {"v": "image", "t": "text"}),
}

#: speed-ups (MMRec seconds / ours) the issue sets for the same model: (training epoch, validation pass)
SPEED_TARGETS: dict[str, tuple[float, float]] = {"mmgcn-faithful": (4.0, 5.0), "lightgcn": (4.0, 5.0)}
#: MMRec's MMGCN measured earlier on this kind of machine (PUBLISHED.md): s/epoch, s/evaluation (valid+test)
MMREC_MMGCN_REFERENCE = (13.3, 1.3)

# MMRec's defaults (overall.yaml) pinned, and a constant learning rate for every model
MMREC_COMMON = {"train_batch_size": 2048, "learning_rate_scheduler": [1.0, 50], "stopping_step": 20,
                "eval_step": 1, "topk": [10, 20, 50], "valid_metric": "Recall@20", "use_gpu": False,
                "save_recommended_topk": False, "filter_out_cod_start_users": True}


# ---------------------------------------------------------------------- MMRec side
def apply_compat_fixes(mmrec: Path) -> list[str]:
    """The compatibility fixes of the module docstring, applied in place (idempotent)."""
    changed = []
    metrics = mmrec / "src" / "utils" / "metrics.py"
    text = metrics.read_text(encoding="utf-8")
    fixed = re.sub(r"\bnp\.float\b(?!\d|_)", "float", text)
    if fixed != text:
        metrics.write_text(fixed, encoding="utf-8")
        changed.append(f"{metrics.relative_to(mmrec)}: np.float -> float")
    pattern = re.compile(r"^(\s*)(\w+)\._update\((\w+)\)\s*$", re.M)
    for path in sorted((mmrec / "src").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        fixed = pattern.sub(
            r"\1_keys = np.array(list(\3.keys())); "
            r"\2[_keys[:, 0], _keys[:, 1]] = np.array(list(\3.values()), dtype=np.float32)", text)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")
            changed.append(f"{path.relative_to(mmrec)}: dok_matrix._update -> vectorised assignment")
    device_pattern = re.compile(r"^(\s*self\.\w+ = \w+)\.cuda\(\)(\s*)$", re.M)
    for path in sorted((mmrec / "src" / "models").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        fixed = device_pattern.sub(r"\1.to(self.device)\2", text)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")
            changed.append(f"{path.relative_to(mmrec)}: self.<graph> = <tensor>.cuda() -> .to(self.device)")
    return changed


RUNNER = r"""
import json, sys, types
try:
    import lmdb  # noqa: F401
except ImportError:  # MMRec's dataset module imports it for raw-image datasets only
    sys.modules["lmdb"] = types.ModuleType("lmdb")
from utils.quick_start import quick_start
args = json.loads(sys.argv[1])
quick_start(model=args["model"], dataset=args["dataset"], config_dict=args["config"], save_model=False)
"""


def write_mmrec_dataset(dataset: Dataset, mmrec: Path, name: str, slots: Slots) -> None:
    """``<mmrec>/data/<name>/`` and ``<mmrec>/src/configs/dataset/<name>.yaml``."""
    folder = mmrec / "data" / name
    write_mmrec(dataset, folder, name=name, overwrite=True)
    config = "\n".join([
        "USER_ID_FIELD: userID", "ITEM_ID_FIELD: itemID", "TIME_FIELD: timestamp",
        "filter_out_cod_start_users: True", f"inter_file_name: '{name}.inter'",
        f"vision_feature_file: '{slots['v']}_feat.npy'", f"text_feature_file: '{slots['t']}_feat.npy'",
        "user_graph_dict_file: 'user_graph_dict.npy'", 'field_separator: "\\t"', "",
    ])
    (mmrec / "src" / "configs" / "dataset" / f"{name}.yaml").write_text(config, encoding="utf-8")
    # MMRec caches item graphs under the data folder by k only: stale after a feature change
    for cached in folder.glob("*_adj_*.pt"):
        cached.unlink()


def _metrics(block: str) -> dict[str, float]:
    return {k.lower(): float(v) for k, v in re.findall(r"(\w+@\d+): ([0-9.]+)", block)}


def best_epoch(log: str) -> int | None:
    """The 1-based epoch of MMRec's best validation in its training log: from its early-stopping
    line, or, when the epoch cap ended the run first, the evaluation its last "Best validation
    results updated" follows (``None``: never updated)."""
    stopped = re.search(r"best eval result in epoch (\d+)", log)
    if stopped:
        return int(stopped.group(1)) + 1
    updates = [m.start() for m in re.finditer(r"Best validation results updated", log)]
    if not updates:
        return None
    evaluated = [int(m.group(1)) for m in re.finditer(r"epoch (\d+) evaluating", log[: updates[-1]])]
    return evaluated[-1] + 1 if evaluated else None


def run_mmrec(mmrec: Path, peer: Peer, name: str, params: Mapping[str, Any], seed: int, epochs: int) -> dict[str, Any]:
    # one value per hyper-parameter: only the seed is left in MMRec's grid loop
    config = {**MMREC_COMMON, **params, "seed": [seed], "epochs": epochs, "hyper_parameters": []}
    args = json.dumps({"model": peer.mmrec, "dataset": name, "config": config})
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RUNNER, args], cwd=mmrec / "src", capture_output=True, text=True)
    wall = time.perf_counter() - started
    log = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"MMRec {peer.mmrec} failed (exit {out.returncode}):\n{log[-4000:]}")
    train_s = [float(s) for s in re.findall(r"epoch \d+ training \[time: ([0-9.]+)s", log)]
    eval_s = [float(s) for s in re.findall(r"epoch \d+ evaluating \[time: ([0-9.]+)s", log)]
    if "best valid result:" not in log:  # a timing run may stop before MMRec's final report
        return {"epochs": len(train_s), "epoch_train_s": train_s, "epoch_eval_s": eval_s, "wall_s": wall}
    final = log[log.rindex("best valid result:"):]
    valid = _metrics(final[: final.index("test result:")])
    test = _metrics(final[final.index("test result:"):].split("\n")[0])
    return {"valid": valid, "test": test, "epochs": len(train_s), "best_epoch": best_epoch(log),
            "train_s": float(np.mean(train_s)), "eval_s": float(np.mean(eval_s)), "wall_s": wall,
            "epoch_train_s": train_s, "epoch_eval_s": eval_s}


# ---------------------------------------------------------------------- our side
def without_cold_start_users(dataset: Dataset) -> Dataset:
    """Valid / test interactions of users without train interactions removed (MMRec's filter)."""
    has_train = np.diff(dataset.train.indptr) > 0
    keep = sp.diags(has_train.astype(np.float32))
    valid, test = (sp.csr_matrix(keep @ dataset.split(s)) for s in ("valid", "test"))
    for matrix in (valid, test):
        matrix.eliminate_zeros()
    return replace(dataset, valid=valid, test=test)


def run_ours(
    dataset: Dataset, peer: Peer, params: Mapping[str, Any], slots: Slots, seed: int, epochs: int,
    evaluate_test: bool = True,
) -> dict[str, Any]:
    model_config, train_overrides = peer.to_ours(params, slots)
    torch.manual_seed(seed)
    model = build_model(peer.ours, dataset, model_config)
    train = TrainConfig(epochs=epochs, batch_size=MMREC_COMMON["train_batch_size"], patience=21, seed=seed,
                        ks=(10, 20, 50), metric="recall@20", valid_mask=("train",), test_mask=("train",),
                        warm_cold=False, progress=False, **train_overrides)
    started = time.perf_counter()
    result = Trainer(model, dataset, train).fit(evaluate_test=evaluate_test)
    wall = time.perf_counter() - started
    history = [r for r in result.history if r.get("loss") is not None]
    train_s = [r["train_seconds"] for r in history]
    eval_s = [r["eval_seconds"] for r in history if "eval_seconds" in r]
    return {"valid": result.valid, "test": None if result.test is None else result.test.metrics,
            "epochs": result.epochs_run, "best_epoch": result.best_epoch, "train_s": float(np.mean(train_s)),
            "eval_s": float(np.mean(eval_s)), "wall_s": wall, "epoch_train_s": train_s, "epoch_eval_s": eval_s,
            "config": model_config, "train": train_overrides}


# ---------------------------------------------------------------------- report
def speed_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Seconds per training epoch and per validation pass (min over the timing runs), MMRec / ours."""
    lines = ["| model | MMRec s/epoch | ours s/epoch | speed-up (target) | MMRec s/validation | ours s/validation "
             "| speed-up (target) |", "|---|---|---|---|---|---|---|"]
    for name, sides in results.items():
        m, o = sides["mmrec"], sides["ours"]
        train_target, eval_target = SPEED_TARGETS.get(name, (None, None))
        train_up, eval_up = m["timed_train_s"] / o["timed_train_s"], m["timed_eval_s"] / o["timed_eval_s"]
        lines.append(
            f"| {name} | {m['timed_train_s']:.2f} | {o['timed_train_s']:.2f} | {_speed_up(train_up, train_target)} "
            f"| {m['timed_eval_s']:.2f} | {o['timed_eval_s']:.2f} | {_speed_up(eval_up, eval_target)} |")
    return "\n".join(lines)


def _speed_up(ratio: float, target: float | None) -> str:
    """``"3.1x (>= 4x: not met)"``, or ``"57.4x (no target)"`` for a model without one."""
    if target is None:
        return f"{ratio:.1f}x (no target)"
    return f"{ratio:.1f}x (>= {target:g}x: {'met' if ratio >= target else 'not met'})"


def table(dataset_name: str, results: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        "| model | code | valid R@20 | valid N@20 | test R@20 | test N@20 | best / run epochs "
        "| train s/epoch (run mean) | train s/epoch (timed, min) | s/validation (run mean) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sides in results.items():
        for side in ("mmrec", "ours"):
            r = sides[side]
            lines.append(
                f"| {name} | {'MMRec' if side == 'mmrec' else 'mmgcn'} | {r['valid'].get('recall@20', float('nan')):.4f} | "
                f"{r['valid'].get('ndcg@20', float('nan')):.4f} | {r['test']['recall@20']:.4f} | {r['test']['ndcg@20']:.4f} | "
                f"{r['best_epoch']} / {r['epochs']} | {r['train_s']:.2f} | {r['timed_train_s']:.2f} | {r['eval_s']:.2f} |")
        m, o = sides["mmrec"], sides["ours"]
        lines.append(
            f"| {name} | ours / MMRec | {o['valid']['recall@20'] / m['valid']['recall@20']:.3f} | "
            f"{o['valid']['ndcg@20'] / m['valid']['ndcg@20']:.3f} | {o['test']['recall@20'] / m['test']['recall@20']:.3f} | "
            f"{o['test']['ndcg@20'] / m['test']['ndcg@20']:.3f} |  | {o['train_s'] / m['train_s']:.3f} | "
            f"{o['timed_train_s'] / m['timed_train_s']:.3f} | {o['eval_s'] / m['eval_s']:.3f} |")
    return "\n".join(lines)


def checked_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace,
                      known: Mapping[str, Any]) -> tuple[Path, list[str]]:
    """``(the MMRec checkout, the model names)`` of ``--mmrec`` and ``--models``, checked."""
    mmrec = args.mmrec.resolve()
    if not (mmrec / "src" / "utils" / "quick_start.py").is_file():
        parser.error(f"--mmrec {mmrec}: not an MMRec checkout (no src/utils/quick_start.py)")
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in known]
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {sorted(known)}")
    return mmrec, names


def prepare_mmrec(mmrec: Path, dataset_name: str) -> tuple[DatasetEntry, Dataset, str, str]:
    """Load the dataset (MMRec's user filter), apply the compatibility fixes and write the
    dataset in MMRec's layout; returns ``(entry, dataset, MMRec's dataset name, MMRec's commit)``.

    Raises:
        SystemExit: the dataset does not load (one line naming the files and the fix; the
            MMRec checkout is left untouched).
    """
    entry = DATASETS[dataset_name]
    try:
        dataset = without_cold_start_users(load_dataset(dataset_name, **entry.load_kwargs))
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    for change in apply_compat_fixes(mmrec):
        print(f"# MMRec compatibility fix applied: {change}")
    mmrec_name = f"{dataset_name}-mmgcn"
    write_mmrec_dataset(dataset, mmrec, mmrec_name, entry.slots)
    commit = subprocess.run(["git", "-C", str(mmrec), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return entry, dataset, mmrec_name, commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmrec", required=True, type=Path, help="a local MMRec checkout (github.com/enoche/MMRec)")
    parser.add_argument("--dataset", default="tiktok", choices=sorted(DATASETS))
    parser.add_argument("--models", default="freedom,lattice", help=f"comma-separated, of {sorted(PEERS)}")
    parser.add_argument("--seed", type=int, default=999, help="seed on both sides (MMRec's default 999)")
    parser.add_argument("--epochs", type=int, default=1000, help="epoch cap on both sides (MMRec's default 1000)")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE",
                        help="override an MMRec-named hyper-parameter of a table entry, e.g. freedom.dropout=0.9")
    parser.add_argument("--timing-rounds", type=int, default=3, help="short runs of both codes, in turns")
    parser.add_argument("--timing-epochs", type=int, default=3, help="epochs per timing run")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the timing runs: seconds per epoch and per validation pass, as speed-ups")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args()

    mmrec, names = checked_arguments(parser, args, PEERS)
    params = {m: dict(PEERS[m].params) for m in names}
    for text in args.set:
        keys, value = parse_override(text)
        if len(keys) != 2 or keys[0] not in params or keys[1] not in params[keys[0]]:
            parser.error(f"--set {text!r}: expected MODEL.PARAM=VALUE with MODEL in {names} and a known PARAM")
        params[keys[0]][keys[1]] = value

    entry, dataset, mmrec_name, commit = prepare_mmrec(mmrec, args.dataset)
    print(f"# {dataset}; MMRec {commit} at {mmrec}; slots {entry.slots}; seed {args.seed}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}")
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        peer = PEERS[name]
        print(f"# {name}: hyper-parameters (MMRec names) {params[name]}", flush=True)
        mmrec_result: dict[str, Any] = {}
        ours: dict[str, Any] = {}
        if not args.speed_only:
            mmrec_result = run_mmrec(mmrec, peer, mmrec_name, params[name], args.seed, args.epochs)
            print(f"#   MMRec done: {mmrec_result['epochs']} epochs, {mmrec_result['wall_s']:.0f} s", flush=True)
            ours = run_ours(dataset, peer, params[name], entry.slots, args.seed, args.epochs)
            print(f"#   ours done: {ours['epochs']} epochs, {ours['wall_s']:.0f} s; our config {ours['config']}, "
                  f"train {ours['train']}", flush=True)
        timed: dict[str, list[float]] = {"mmrec": [], "ours": []}
        timed_eval: dict[str, list[float]] = {"mmrec": [], "ours": []}
        for _ in range(args.timing_rounds):
            run = run_mmrec(mmrec, peer, mmrec_name, params[name], args.seed, args.timing_epochs)
            timed["mmrec"] += run["epoch_train_s"]
            timed_eval["mmrec"] += run["epoch_eval_s"]
            run = run_ours(dataset, peer, params[name], entry.slots, args.seed, args.timing_epochs, evaluate_test=False)
            timed["ours"] += run["epoch_train_s"]
            timed_eval["ours"] += run["epoch_eval_s"]
        for side, result in (("mmrec", mmrec_result), ("ours", ours)):
            result["timed_epoch_train_s"] = timed[side]
            result["timed_train_s"] = min(timed[side]) if timed[side] else float("nan")
            result["timed_epoch_eval_s"] = timed_eval[side]
            result["timed_eval_s"] = min(timed_eval[side]) if timed_eval[side] else float("nan")
        print(f"#   timing runs: MMRec {timed['mmrec']}, ours {[round(t, 2) for t in timed['ours']]}", flush=True)
        results[name] = {"mmrec": mmrec_result, "ours": ours, "params": params[name], "note": peer.note}
    if args.speed_only:
        report = speed_table(results)
        print(f"\n{args.dataset}: seconds per training epoch and per validation pass (full ranking of the valid "
              f"users), min over {args.timing_rounds} x {args.timing_epochs} epochs per code, in turns; "
              f"{torch.get_num_threads()} threads; load average now {os.getloadavg()[0]:.2f}; MMRec's MMGCN measured "
              f"alone earlier: {MMREC_MMGCN_REFERENCE[0]} s/epoch, {MMREC_MMGCN_REFERENCE[1]} s/evaluation "
              f"(valid + test; PUBLISHED.md)\n")
        print(report)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            payload = {"dataset": args.dataset, "seed": args.seed, "mmrec_commit": commit, "speed": results}
            args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
            args.out.with_suffix(".md").write_text(report + "\n")
        return
    report = table(args.dataset, results)
    print(f"\n{args.dataset}: MMRec's protocol (train items masked, users without train interactions left "
          f"out, best validation Recall@20 epoch), seed {args.seed}; timed: min over {args.timing_rounds} x "
          f"{args.timing_epochs} epochs per code, in turns; load average now {os.getloadavg()[0]:.2f}\n")
    print(report)
    for name, r in results.items():
        if r["note"]:
            print(f"\n{name}: {r['note']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"dataset": args.dataset, "seed": args.seed, "mmrec_commit": commit, "slots": entry.slots,
                   "results": results}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        args.out.with_suffix(".md").write_text(report + "\n")


if __name__ == "__main__":
    main()
