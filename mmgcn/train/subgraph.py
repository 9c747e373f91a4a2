"""Sampled-subgraph training: each step propagates over the batch's sampled neighbourhood.

``train.num_neighbors = [k_1, ..., k_L]`` turns it on. :class:`SubgraphTraining` wraps a
model whose :meth:`~mmgcn.models.base.Recommender.subgraph_sampling` returns its graph and
depth; for every batch it draws the ``L``-hop neighbourhood of the batch's users and items
with :class:`~mmgcn.nn.subgraph.NeighborSampler` and calls
``model.loss(users, pos, neg, subgraph=...)``. The trainer calls the wrapper's ``loss``
exactly as a model's (and DistributedDataParallel wraps it the same way), so a step's
graph work is proportional to the sampled neighbourhood, not to the graph: under
data-parallel training each rank propagates over its own shard's neighbourhood.

Where the noise matters (``benchmarks/sampled_quality.py``, MMGCN on TikTok): a non-linear
model whose best checkpoint is an early transient loses it when the *batch's own* hop is
drawn, and keeps it when that hop takes every neighbour (``num_neighbors=[-1, 10, 10]``,
the trajectory then matches full-graph training) while the deeper hops are drawn.

Control variates (``train.control_variates``, off by default): each hop aggregates the drawn
neighbours' change since they were last seen plus every neighbour's stored state
(:class:`~mmgcn.nn.subgraph.SubgraphHistory`; VR-GCN, Chen, Zhu & Song, ICML 2018), which
takes most of the noise out of the forward pass at the memory of the full graph's node
states per layer (and modality); gradients still flow through the drawn edges only.

The draws come from the global torch generator: its state is checkpointed with the run
(each rank's own, under DDP), and so is the history (rank 0's: under DDP the other ranks
resume from rank 0's history, which changes their variance, not their expectations), so a
single-process resumed run draws and aggregates what the uninterrupted one did.
Evaluation (validation, test, ``recommend``) always propagates over the full graph.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mmgcn.errors import ConfigError
from mmgcn.models.base import Recommender
from mmgcn.nn.subgraph import NeighborSampler, SubgraphHistory


def resolve_fanouts(num_neighbors: Sequence[int], hops: int, model: str) -> tuple[int, ...]:
    """``num_neighbors`` as one fan-out per hop: one value repeats, otherwise ``hops`` values.

    Raises:
        ConfigError: a length that is neither 1 nor ``hops``.
    """
    fanouts = tuple(int(k) for k in num_neighbors)
    if len(fanouts) == 1:
        return fanouts * hops
    if len(fanouts) != hops:
        raise ConfigError(f"train.num_neighbors {list(fanouts)}: model '{model}' propagates over {hops} hops; "
                         f"give {hops} values (one per hop) or a single one for all")
    return fanouts


class SubgraphTraining(nn.Module):
    """``loss(users, pos, neg)`` of ``model`` over each batch's sampled neighbourhood.

    Args:
        model: a recommender that supports subgraphs (``subgraph_sampling()`` not ``None``).
        num_neighbors: neighbours drawn per node at each hop (one value per hop or one for all).
        control_variates: aggregate over a :class:`~mmgcn.nn.subgraph.SubgraphHistory`
            (default ``False``: the plain drawn estimates).

    Raises:
        ConfigError: the model cannot train on subgraphs, or the fan-outs do not match its depth.
    """

    def __init__(self, model: Recommender, num_neighbors: Sequence[int], control_variates: bool = False) -> None:
        super().__init__()
        spec = model.subgraph_sampling()
        if spec is None:
            raise ConfigError(
                f"model '{model.name}' cannot train on sampled subgraphs (train.num_neighbors); models that "
                f"can: mmgcn, mmgcn-faithful, lightgcn. Remove train.num_neighbors to train on the full graph"
            )
        graph, hops = spec
        self.model = model
        self.history = SubgraphHistory() if control_variates else None
        self.sampler = NeighborSampler(graph, resolve_fanouts(num_neighbors, max(hops, 1), model.name),
                                       history=self.history)
        self.last_subgraph_edges = 0  # sampled edges of the latest step (what a step propagates over)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        subgraph = self.sampler.sample(users, pos, neg)
        self.last_subgraph_edges = subgraph.graph.n_edges
        return self.model.loss(users, pos, neg, subgraph=subgraph)

    def extra_repr(self) -> str:
        return f"num_neighbors={list(self.sampler.num_neighbors)}, control_variates={self.history is not None}"


def find_subgraph_training(module: nn.Module) -> SubgraphTraining | None:
    """The :class:`SubgraphTraining` inside a chain of step wrappers (each holds the next
    as ``.module``), or ``None``."""
    seen = 0
    while module is not None and seen < 16:
        if isinstance(module, SubgraphTraining):
            return module
        module, seen = getattr(module, "module", None), seen + 1
    return None


__all__ = ["SubgraphTraining", "find_subgraph_training", "resolve_fanouts"]
