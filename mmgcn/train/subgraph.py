"""Sampled-subgraph training: each step propagates over the batch's sampled neighbourhood.

``train.num_neighbors = [k_1, ..., k_L]`` turns it on. :class:`SubgraphTraining` wraps a
model whose :meth:`~mmgcn.models.base.Recommender.subgraph_sampling` returns its graph and
depth; for every batch it draws the ``L``-hop neighbourhood of the batch's users and items
with :class:`~mmgcn.nn.subgraph.NeighborSampler` and calls
``model.loss(users, pos, neg, subgraph=...)``. The trainer calls the wrapper's ``loss``
exactly as a model's (and DistributedDataParallel wraps it the same way), so a step's
graph work is proportional to the sampled neighbourhood, not to the graph: under
data-parallel training each rank propagates over its own shard's neighbourhood.

Which hop's noise matters (``benchmarks/sampled_quality.py``, MMGCN on TikTok): MMGCN's
best checkpoint is an early transient (epoch 3, then validation falls by a quarter), and
drawing the *batch's own* hop (``num_neighbors=[10]``) loses it; keeping that hop whole
(``num_neighbors=[-1, 10, 10]``: PyG's ``-1``) while the deeper hops are drawn follows the
full-graph trajectory. LightGCN keeps its quality with every hop drawn.

The draws come from the global torch generator: its state is checkpointed with the run
(each rank's own, under DDP), so a resumed run draws what the uninterrupted one drew.
Evaluation (validation, test, ``recommend``) always propagates over the full graph.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mmgcn.errors import ConfigError
from mmgcn.models.base import Recommender
from mmgcn.nn.subgraph import NeighborSampler


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

    Raises:
        ConfigError: the model cannot train on subgraphs, or the fan-outs do not match its depth.
    """

    def __init__(self, model: Recommender, num_neighbors: Sequence[int]) -> None:
        super().__init__()
        spec = model.subgraph_sampling()
        if spec is None:
            raise ConfigError(
                f"model '{model.name}' cannot train on sampled subgraphs (train.num_neighbors); models that "
                f"can: mmgcn, mmgcn-faithful, lightgcn. Remove train.num_neighbors to train on the full graph"
            )
        graph, hops = spec
        self.model = model
        self.sampler = NeighborSampler(graph, resolve_fanouts(num_neighbors, max(hops, 1), model.name))
        self.last_subgraph_edges = 0  # sampled edges of the latest step (what a step propagates over)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        subgraph = self.sampler.sample(users, pos, neg)
        self.last_subgraph_edges = subgraph.graph.n_edges
        return self.model.loss(users, pos, neg, subgraph=subgraph)

    def extra_repr(self) -> str:
        return f"num_neighbors={list(self.sampler.num_neighbors)}"


__all__ = ["SubgraphTraining", "resolve_fanouts"]
