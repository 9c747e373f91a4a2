"""Sampled neighbourhoods: hand-checked numbering and weights, exactness when nothing is
dropped, unbiased aggregation when neighbours are drawn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.models.base import build_model
from mmgcn.nn.propagation import BipartitePropagation
from mmgcn.nn.subgraph import NeighborSampler
from mmgcn.train.subgraph import SubgraphTraining
from mmgcn.utils.seed import seed_everything


def _graph(pairs, shape, norm="none"):
    rows, cols = zip(*pairs)
    return BipartitePropagation(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape), norm)


def _dense(sparse):
    return sparse.to_dense().numpy()


def test_one_hop_numbering_and_weights_by_hand():
    # users 0..2, items 0..3; user 0 {0,1,2}, user 1 {2}, user 2 {3}
    graph = _graph([(0, 0), (0, 1), (0, 2), (1, 2), (2, 3)], (3, 4), norm="left")
    sub = NeighborSampler(graph, [5]).sample(torch.tensor([1, 1]), torch.tensor([2, 2]), torch.tensor([3, 0]))
    # seeds first, ascending: users [1], items [0, 2, 3]; then the new nodes of the hop
    assert sub.users[: sub.n_seed_users].tolist() == [1] and sub.items[: sub.n_seed_items].tolist() == [0, 2, 3]
    assert sub.user_index.tolist() == [0, 0] and sub.item_index.tolist() == [1, 1, 2, 0]
    assert sorted(sub.users.tolist()) == [0, 1, 2]  # item 0's and 2's users, item 3's user
    # user 1 aggregates its one item (mean: weight 1); item 2 the mean of users 0 and 1
    u2i, i2u = _dense(sub.graph.user_to_item), _dense(sub.graph.item_to_user)
    local_user = {int(u): k for k, u in enumerate(sub.users)}
    local_item = {int(i): k for k, i in enumerate(sub.items)}
    assert u2i[local_user[1]].tolist() == [1.0 if k == local_item[2] else 0.0 for k in range(len(sub.items))]
    assert i2u[local_item[2], local_user[0]] == i2u[local_item[2], local_user[1]] == 0.5
    # the last hop's nodes (user 0, user 2) have no rows of their own: not sampled
    assert u2i[local_user[0]].sum() == 0 and u2i[local_user[2]].sum() == 0
    # trimmed for a 1-layer model: outputs for the seeds only, reading every node
    only = sub.graph.layer(0, 1)
    assert tuple(only.user_to_item.shape) == (1, sub.items.numel())
    assert tuple(only.item_to_user.shape) == (3, sub.users.numel())
    np.testing.assert_array_equal(_dense(only.item_to_user), i2u[:3])


def test_drawn_neighbours_are_rescaled_by_degree_over_fanout():
    # item 0 has 6 users; a fan-out of 2 draws 2 of them, each weighted 6/2 x its 1/sqrt(d_u d_i)
    graph = _graph([(u, 0) for u in range(6)] + [(0, 1)], (6, 2), norm="sym")
    full = _dense(graph.item_to_user)
    torch.manual_seed(0)
    sub = NeighborSampler(graph, [2]).sample(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]))
    row = _dense(sub.graph.item_to_user)[int((sub.items == 0).nonzero())]
    drawn = {int(sub.users[k]): w for k, w in enumerate(row) if w}
    assert 1 <= len(drawn) <= 2 and sum(round(w / (full[0, u] * 3)) for u, w in drawn.items()) == 2


def test_unbiased_one_hop_aggregation():
    data = make_synthetic(80, 40, interactions_per_user=10, cold_item_fraction=0.0, seed=1, progress=False)
    graph = BipartitePropagation(data.train, "sym")
    states = torch.randn(data.n_users, 3, generator=torch.Generator().manual_seed(0))
    item = int(np.argmax(np.diff(data.train.tocsc().indptr)))  # the most popular item: it is sampled
    exact = graph.to_items(states)[item]
    torch.manual_seed(1)
    sampler = NeighborSampler(graph, [3])
    draws = []
    for _ in range(800):
        sub = sampler.sample(torch.tensor([0]), torch.tensor([item]), torch.tensor([item]))
        local = int((sub.items == item).nonzero())
        draws.append(sub.graph.to_items(states[sub.users])[local])
    draws = torch.stack(draws)
    stderr = draws.std(0) / np.sqrt(len(draws))
    assert torch.all((draws.mean(0) - exact).abs() < 4 * stderr + 1e-6)
    assert draws.std(0).min() > 0  # it did sample (not the exact neighbourhood)


@pytest.mark.parametrize("name,config", [
    ("lightgcn", {"num_layers": 3}),
    ("mmgcn", {"num_layers": 2, "aggr": "mean"}),
    ("mmgcn", {"num_layers": 2, "aggr": "sym", "layer_combination": "mean", "fusion": "attention"}),
])
def test_full_fanout_subgraph_equals_full_graph_loss_and_gradients(name, config):
    data = make_synthetic(50, 30, modalities={"image": 6, "text": 4}, interactions_per_user=6,
                          cold_item_fraction=0.0, seed=2, progress=False)
    seed_everything(0)
    model = build_model(name, data, config)
    users, pos, neg = torch.tensor([0, 3, 3, 7]), torch.tensor([1, 2, 5, 2]), torch.tensor([4, 0, 9, 11])
    full = model.loss(users, pos, neg)
    grads_full = torch.autograd.grad(full, [p for p in model.parameters() if p.requires_grad])
    big = int(max(data.train.getnnz(axis=0).max(), data.train.getnnz(axis=1).max()))
    # a fan-out above every degree, or -1 (every neighbour)
    fanouts = [big] * config["num_layers"] if name == "lightgcn" else [-1] * config["num_layers"]
    sub = NeighborSampler(model.subgraph_sampling()[0], fanouts).sample(users, pos, neg)
    assert sub.users.numel() <= data.n_users and sub.items.numel() <= data.n_items
    sampled = model.loss(users, pos, neg, subgraph=sub)
    grads_sub = torch.autograd.grad(sampled, [p for p in model.parameters() if p.requires_grad])
    torch.testing.assert_close(sampled, full, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_sub, grads_full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_small_fanout_touches_a_fraction_of_the_graph():
    data = make_synthetic(2000, 500, interactions_per_user=20, cold_item_fraction=0.0, seed=0, progress=False)
    model = build_model("lightgcn", data, {"num_layers": 2})
    step = SubgraphTraining(model, [5])
    users = torch.arange(16)
    loss = step.loss(users, torch.tensor(data.train[:16].indices[:16].astype(np.int64)), torch.arange(16))
    assert torch.isfinite(loss)
    assert 0 < step.last_subgraph_edges < 0.25 * 2 * data.train.nnz


def test_minus_one_keeps_every_neighbour_of_that_hop_only():
    data = make_synthetic(200, 60, interactions_per_user=12, cold_item_fraction=0.0, seed=3, progress=False)
    graph = BipartitePropagation(data.train, "left")
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    torch.manual_seed(0)
    sub = NeighborSampler(graph, [-1, 2]).sample(users, pos, neg)
    seeds = sub.users[: sub.n_seed_users]
    # the seeds' hop is exact: each seed user aggregates all its items with the full weights
    full = graph.user_to_item.to_dense()[seeds][:, sub.items]
    torch.testing.assert_close(sub.graph.user_to_item.to_dense()[: sub.n_seed_users], full)
    # the second hop still draws: items beyond the seeds have more than 2 users and get at most 2
    second = sub.graph.item_to_user.to_dense()[sub.n_seed_items:]
    assert data.train.getnnz(axis=0)[sub.items[sub.n_seed_items:].numpy()].min() > 2
    assert second.shape[0] > 0 and (second > 0).sum(1).max() <= 2
    for bad in ([0], [-2], []):
        with pytest.raises(ValueError, match="num_neighbors"):
            NeighborSampler(graph, bad)
