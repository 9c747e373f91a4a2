"""Term-by-term check against MMRec's own model object: same weights in, same numbers out?

    python benchmarks/peers/equivalence.py --mmrec /work/peers/MMRec --dataset tiktok --models lattice

A run to early stopping compares two codes through different random streams (initialisers,
samplers, batch order), so a gap between them can be noise or a difference in the model.
This script removes the noise: for each model of :data:`CHECKS` it builds MMRec's model
object in this process (MMRec's ``Config``, ``RecDataset`` and ``TrainDataLoader`` on the
dataset written in MMRec's layout, as ``benchmarks/peers/mmrec.py`` does), builds ours on
the same data with the hyper-parameters of ``mmrec.py``'s table, copies our initial weights
into MMRec's parameters, and prints

1. the final user / item embeddings of one training-mode forward pass of each (max and
   mean absolute difference, and the rows that differ by more than 1e-4);
2. the loss and every parameter's gradient on the same batch (relative difference and
   cosine);
3. after ``--steps`` Adam steps on identical batches (same users, positives, negatives,
   learning rate) from the same start: the embeddings again, and both models' validation
   Recall@20 with our evaluator on each model's embeddings.

MMRec's code runs unmodified but for ``mmrec.py``'s compatibility fixes (CPU device); it is
imported from ``--mmrec``, never copied here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mmrec import DATASETS, MMREC_COMMON, PEERS, checked_arguments, prepare_mmrec  # noqa: E402

from mmgcn.eval.evaluator import evaluate  # noqa: E402
from mmgcn.models import build_model  # noqa: E402
from mmgcn.models.base import Embeddings  # noqa: E402


@contextlib.contextmanager
def inside(path: Path):
    """Run with ``path`` as working directory and first on ``sys.path`` (MMRec's imports are
    top-level: ``utils``, ``common``, ``models``)."""
    old = os.getcwd()
    os.chdir(path)
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        os.chdir(old)
        sys.path.remove(str(path))


def mmrec_model(mmrec: Path, model: str, dataset_name: str, params: dict[str, Any], seed: int):
    """MMRec's model object, built by MMRec's own classes (config, dataset, train loader)."""
    try:
        import lmdb  # noqa: F401
    except ImportError:  # MMRec's dataset module imports it for raw-image datasets only
        sys.modules["lmdb"] = types.ModuleType("lmdb")
    with inside(mmrec / "src"):
        from utils.configurator import Config
        from utils.dataloader import TrainDataLoader
        from utils.dataset import RecDataset
        from utils.utils import get_model, init_seed

        config = Config(model, dataset_name, {**MMREC_COMMON, **params, "seed": seed, "hyper_parameters": []})
        init_seed(seed)
        data = RecDataset(config)
        train, _, _ = data.split()
        str(train)  # MMRec's __str__ sets inter_num, which its loader reads (quick_start logs it first)
        loader = TrainDataLoader(config, train, batch_size=config["train_batch_size"], shuffle=True)
        net = get_model(model)(config, loader).to(config["device"])
    return net


@dataclass(frozen=True)
class Check:
    """How our weights map onto MMRec's model, and how each side computes a pass.

    Attributes:
        copy: copies our parameters into MMRec's (``(ours, theirs, slots)``).
        grads: ``{our parameter name: MMRec parameter name}`` compared after backward (``(slots)``).
        theirs_forward: MMRec's training-mode forward, ``(users, items)``.
        theirs_loss: MMRec's loss on ``(users, pos, neg)``.
        start_epoch: resets both models' per-epoch state (a fresh epoch's first batch).
    """

    copy: Callable[[Any, Any, dict[str, str]], None]
    grads: Callable[[dict[str, str]], dict[str, str]]
    theirs_forward: Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
    theirs_loss: Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    start_epoch: Callable[[Any, Any], None]


def _lattice_copy(ours, theirs, slots: dict[str, str]) -> None:
    with torch.no_grad():
        theirs.user_embedding.weight.copy_(ours.user_embedding)
        theirs.item_id_embedding.weight.copy_(ours.item_embedding)
        for slot, table, projection in (("v", "image_embedding", "image_trs"), ("t", "text_embedding", "text_trs")):
            getattr(theirs, table).weight.copy_(ours.content.tables[slots[slot]])
            getattr(theirs, projection).weight.copy_(ours.projections[slots[slot]].weight)
            getattr(theirs, projection).bias.copy_(ours.projections[slots[slot]].bias)
        order = [ours.modalities.index(slots["v"]), ours.modalities.index(slots["t"])]
        theirs.modal_weight.copy_(ours.modality_logits[order])


def _lattice_grads(slots: dict[str, str]) -> dict[str, str]:
    return {
        "user_embedding": "user_embedding.weight", "item_embedding": "item_id_embedding.weight",
        f"content.tables.{slots['v']}": "image_embedding.weight", f"content.tables.{slots['t']}": "text_embedding.weight",
        f"projections.{slots['v']}.weight": "image_trs.weight", f"projections.{slots['t']}.weight": "text_trs.weight",
        f"projections.{slots['v']}.bias": "image_trs.bias", f"projections.{slots['t']}.bias": "text_trs.bias",
        "modality_logits": "modal_weight",
    }


def _lattice_start_epoch(ours, theirs) -> None:
    ours.on_epoch_start(0, np.random.default_rng(0))
    theirs.pre_epoch_processing()


CHECKS: dict[str, Check] = {
    "lattice": Check(
        _lattice_copy, _lattice_grads,
        lambda theirs: theirs.forward(theirs.norm_adj, build_item_graph=theirs.build_item_graph),
        lambda theirs, u, p, n: theirs.calculate_loss(torch.stack([u, p, n])),
        _lattice_start_epoch,
    ),
}


def _diff(a: torch.Tensor, b: torch.Tensor) -> str:
    rows = int(((a - b).abs().amax(1) > 1e-4).sum())
    return (f"max |diff| {float((a - b).abs().max()):.2e}, mean {float((a - b).abs().mean()):.2e} "
            f"(values up to {float(b.abs().max()):.2f}); rows differing > 1e-4: {rows} of {a.shape[0]}")


def compare_forward(check: Check, ours, theirs, label: str) -> tuple[Embeddings, tuple[torch.Tensor, torch.Tensor]]:
    """One training-mode forward of each at a fresh epoch's first batch; prints the differences."""
    check.start_epoch(ours, theirs)
    with torch.no_grad():
        mine = ours.embed()
        their_users, their_items = check.theirs_forward(theirs)
    print(f"{label}, users: {_diff(mine.users, their_users)}")
    print(f"{label}, items: {_diff(mine.items, their_items)}")
    return mine, (their_users, their_items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmrec", required=True, type=Path, help="a local MMRec checkout (github.com/enoche/MMRec)")
    parser.add_argument("--dataset", default="tiktok", choices=sorted(DATASETS))
    parser.add_argument("--models", default="lattice", help=f"comma-separated, of {sorted(CHECKS)}")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--steps", type=int, default=30, help="identical Adam steps of both models (section 3)")
    args = parser.parse_args()
    mmrec, names = checked_arguments(parser, args, CHECKS)
    entry, dataset, mmrec_name, commit = prepare_mmrec(mmrec, args.dataset)
    torch.set_num_threads(1)
    print(f"# {dataset}; MMRec {commit}; slots {entry.slots}; seed {args.seed}; torch {torch.__version__}")
    rng = torch.Generator().manual_seed(args.seed)
    train = dataset.train.tocoo()
    for name in names:
        check, peer = CHECKS[name], PEERS[name]
        params = dict(peer.params)
        model_config, train_overrides = peer.to_ours(params, entry.slots)
        torch.manual_seed(args.seed)
        ours = build_model(peer.ours, dataset, model_config)
        theirs = mmrec_model(mmrec, peer.mmrec, mmrec_name, params, args.seed)
        with torch.no_grad():  # unequal modality weights, so that a swapped slot shows
            ours.modality_logits.copy_(torch.linspace(0.3, -0.3, len(ours.modalities)))
        check.copy(ours, theirs, entry.slots)
        ours.train(), theirs.train()
        print(f"## {name}: ours {peer.ours} {model_config}; MMRec {peer.mmrec} {params}")

        def batch():
            idx = torch.randint(0, train.nnz, (MMREC_COMMON["train_batch_size"],), generator=rng)
            neg = torch.randint(0, dataset.n_items, (len(idx),), generator=rng)
            return torch.as_tensor(train.row[idx], dtype=torch.long), torch.as_tensor(train.col[idx], dtype=torch.long), neg

        # 1. forward
        compare_forward(check, ours, theirs, "1. forward")
        # 2. loss and gradients on one batch, a fresh epoch's first batch on both sides
        u, p, n = batch()
        check.start_epoch(ours, theirs)
        ours.zero_grad(), theirs.zero_grad()
        loss_ours = ours.loss(u, p, n)
        loss_theirs = check.theirs_loss(theirs, u, p, n)
        loss_ours.backward(), loss_theirs.backward()
        print(f"2. loss: ours {loss_ours.item():.6f}, MMRec {loss_theirs.item():.6f}")
        ours_params, their_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
        for mine_name, their_name in check.grads(entry.slots).items():
            a, b = ours_params[mine_name].grad, their_params[their_name].grad
            if a is None or b is None:
                print(f"2. grad {mine_name}: ours {'-' if a is None else 'set'}, MMRec {'-' if b is None else 'set'}")
                continue
            rel = float((a - b).norm() / b.norm().clamp_min(1e-30))
            cos = float(F.cosine_similarity(a.ravel(), b.ravel(), dim=0))
            print(f"2. grad {mine_name:<28} |MMRec| {float(b.norm()):.3e}  relative diff {rel:.2e}  cosine {cos:.6f}")
        # 3. identical Adam steps from the same start
        check.copy(ours, theirs, entry.slots)
        lr = train_overrides.get("lr", params.get("learning_rate", 1e-3))
        opt_ours, opt_theirs = torch.optim.Adam(ours.parameters(), lr=lr), torch.optim.Adam(theirs.parameters(), lr=lr)
        check.start_epoch(ours, theirs)
        for _ in range(args.steps):
            u, p, n = batch()
            opt_ours.zero_grad()
            ours.loss(u, p, n).backward()
            opt_ours.step()
            opt_theirs.zero_grad()
            check.theirs_loss(theirs, u, p, n).backward()
            opt_theirs.step()
        mine, (their_users, their_items) = compare_forward(
            check, ours, theirs, f"3. after {args.steps} identical Adam steps (lr {lr})")
        for label, users, items in (("ours", mine.users, mine.items), ("MMRec", their_users, their_items)):
            result = evaluate(ours, dataset, "valid", ks=(20,), mask=("train",), emb=Embeddings(users, items, {}))
            print(f"3. valid Recall@20 with our evaluator on {label}'s embeddings: {result.metrics['recall@20']:.4f}")


if __name__ == "__main__":
    main()
