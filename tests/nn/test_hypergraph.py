"""Hyperedge assignments (Gumbel-softmax, seeded dropout) and hypergraph propagation by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mmgcn.nn.hypergraph import dropout, gumbel_softmax, hypergraph_propagation


def test_without_noise_it_is_the_tempered_softmax():
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])
    # softmax(l / 0.5): (1, 9) / 10 and (1/2, 1/2)
    torch.testing.assert_close(gumbel_softmax(logits, 0.5), torch.tensor([[0.1, 0.9], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(logits, 0.0)


def test_gumbel_draws_are_reproducible_rows_on_the_simplex_and_follow_the_softmax():
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5]])).expand(40_000, 3)
    draws = gumbel_softmax(logits, 0.2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(draws.sum(1), torch.ones(40_000))
    assert (draws >= 0).all()
    assert torch.equal(draws, gumbel_softmax(logits, 0.2, torch.Generator().manual_seed(1)))
    assert not torch.equal(draws, gumbel_softmax(logits, 0.2, torch.Generator().manual_seed(2)))
    # Gumbel-max: the winning hyperedge is distributed as softmax(logits) = (0.2, 0.3, 0.5)
    shares = torch.bincount(draws.argmax(1), minlength=3).float() / 40_000
    torch.testing.assert_close(shares, torch.tensor([0.2, 0.3, 0.5]), atol=0.01, rtol=0)


def test_seeded_dropout_keeps_the_expectation():
    x = torch.ones(100_000)
    out = dropout(x, 0.5, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert abs(out.mean().item() - 1.0) < 0.02
    assert torch.equal(dropout(x, 0.5, None), x) and torch.equal(dropout(x, 1.0, torch.Generator()), x)


def test_propagation_through_two_hyperedges_by_hand():
    item_assign = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    user_assign = torch.tensor([[0.25, 0.75]])
    item_states = torch.tensor([[2.0], [4.0], [6.0]])
    users, items, hyperedges = hypergraph_propagation(item_assign, user_assign, item_states, 1)
    # Z = Lambda^T G: e0 = 2 + 0.5*4 = 4, e1 = 0.5*4 + 6 = 8
    assert hyperedges.squeeze(1).tolist() == [4.0, 8.0]
    assert items.squeeze(1).tolist() == [4.0, 6.0, 8.0]
    assert users.squeeze(1).tolist() == [0.25 * 4 + 0.75 * 8]
    # a second round starts from the first round's items: e0 = 4 + 3 = 7, e1 = 3 + 8 = 11
    users2, _, hyperedges2 = hypergraph_propagation(item_assign, user_assign, item_states, 2)
    assert hyperedges2.squeeze(1).tolist() == [7.0, 11.0]
    assert users2.squeeze(1).tolist() == [0.25 * 7 + 0.75 * 11]
