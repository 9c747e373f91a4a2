"""Fusion blocks: shapes, exact decompositions, attention weights, gradients, chunked scoring."""

from __future__ import annotations

import pytest
import torch

from mmgcn.nn.fusion import (
    AttentionFusion,
    ConcatFusion,
    MLPScoreHead,
    check_modality_names,
)

IN_DIMS = {"image": 5, "audio": 3, "text": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (much slower on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(n: int = 7, dim: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(n, d, generator=gen) for m, d in IN_DIMS.items()}
    return feats, torch.randn(n, dim, generator=gen)


# ---------------------------------------------------------------------- concat
def test_concat_shapes_and_repr():
    torch.manual_seed(0)
    block = ConcatFusion(IN_DIMS, id_dim=8, out_dim=6, proj_dim=4, hidden_dims=(10,))
    feats, ids = _inputs()
    assert block(feats, ids).shape == (7, 6)
    assert block.part_names == ("id", "image", "audio", "text")
    assert "image:5" in repr(block) and "-> 6" in repr(block)
    assert block.parts(feats, ids) is None and not block.is_additive


def test_concat_affine_parts_sum_to_output_and_match_hand_split():
    torch.manual_seed(0)
    block = ConcatFusion(IN_DIMS, id_dim=8, out_dim=6, hidden_dims=())
    feats, ids = _inputs()
    parts = block.parts(feats, ids)
    assert list(parts) == ["id", "image", "audio", "text", "bias"]
    torch.testing.assert_close(sum(parts.values()), block(feats, ids))
    # the id part is the first 8 weight columns times the ID embedding, by hand
    weight = block.mlp[-1].weight
    torch.testing.assert_close(parts["id"], ids @ weight[:, :8].T)
    # parts other than id do not depend on the ID embedding
    parts_zero_id = block.parts(feats, torch.zeros_like(ids))
    torch.testing.assert_close(parts_zero_id["image"], parts["image"])
    assert torch.count_nonzero(parts_zero_id["id"]) == 0


def test_concat_gradients_reach_every_projection_and_the_id_input():
    torch.manual_seed(0)
    block = ConcatFusion(IN_DIMS, id_dim=8, out_dim=6)
    feats, ids = _inputs()
    ids.requires_grad_(True)
    block(feats, ids).pow(2).sum().backward()
    for m in IN_DIMS:
        assert block.projections.proj[m].weight.grad.abs().sum() > 0, m
    assert ids.grad.abs().sum() > 0


def test_missing_modality_is_a_clear_error():
    block = ConcatFusion(IN_DIMS, id_dim=8, out_dim=6)
    feats, ids = _inputs()
    del feats["audio"]
    with pytest.raises(KeyError, match="audio"):
        block(feats, ids)


# ---------------------------------------------------------------------- attention
def test_attention_weights_sum_to_one_and_fused_is_the_weighted_sum():
    torch.manual_seed(0)
    block = AttentionFusion(IN_DIMS, dim=8, attention_dim=5)
    feats, ids = _inputs()
    out = block(feats, ids)
    assert out.parts.shape == (7, 4, 8) and out.keys.shape == (7, 4, 5) and out.weights.shape == (7, 4)
    torch.testing.assert_close(out.weights.sum(dim=1), torch.ones(7))
    assert (out.weights > 0).all()
    torch.testing.assert_close(out.fused, (out.weights.unsqueeze(-1) * out.parts).sum(1))
    torch.testing.assert_close(out.parts[:, 0], ids)  # "id" is part 0, unprojected


def test_attention_zero_query_gives_uniform_weights_over_present_parts():
    block = AttentionFusion(IN_DIMS, dim=8)
    with torch.no_grad():
        block.query.zero_()
    feats, ids = _inputs(n=3)
    mask = torch.tensor([[True, True, True, True], [False, True, True, True], [False, False, True, False]])
    out = block(feats, ids, mask)
    expected = torch.tensor([[0.25] * 4, [0.0, 1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(out.weights, expected)
    torch.testing.assert_close(out.fused[2], out.parts[2, 2])  # only "audio" present
    torch.testing.assert_close(out.fused[0], out.parts[0].mean(0))


def test_attention_gradients_reach_every_projection_key_query_and_id():
    torch.manual_seed(0)
    block = AttentionFusion(IN_DIMS, dim=8, user_conditioned=True)
    feats, ids = _inputs()
    ids.requires_grad_(True)
    out = block(feats, ids)
    users = torch.randn(7, 8)
    loss = out.fused.pow(2).sum() + block.score_pairs(users, out.parts, out.keys).sum()
    loss.backward()
    for m in IN_DIMS:
        assert block.projections.proj[m].weight.grad.abs().sum() > 0, m
    for p in (block.key.weight, block.query, block.user_query.weight, ids):
        assert p.grad.abs().sum() > 0


def test_user_conditioned_weights_sum_to_one_per_pair_and_scores_agree():
    torch.manual_seed(0)
    block = AttentionFusion(IN_DIMS, dim=8, user_conditioned=True)
    feats, ids = _inputs(n=6)
    mask = torch.ones(6, 4, dtype=torch.bool)
    mask[2, 0] = False
    out = block(feats, ids, mask)
    users = torch.randn(5, 8)
    weights = block.user_weights(users, out.keys, mask)
    assert weights.shape == (5, 6, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 6))
    assert (weights[:, 2, 0] == 0).all()
    # different users weigh the same item differently
    assert not torch.allclose(weights[0], weights[1])
    all_scores = block.score_all(users, out.parts, out.keys, mask, chunk_elems=10)  # forces 1-user chunks
    by_hand = (weights * torch.einsum("npd,bd->bnp", out.parts, users)).sum(-1)
    torch.testing.assert_close(all_scores, by_hand)
    # aligned pairs: user b with item b, equals the diagonal of the all-items scores
    pairs = block.score_pairs(users, out.parts[:5], out.keys[:5], mask[:5])
    torch.testing.assert_close(pairs, torch.diagonal(all_scores[:, :5]))


def test_user_conditioned_with_zero_user_map_equals_item_only_attention():
    block = AttentionFusion(IN_DIMS, dim=8, user_conditioned=True)
    with torch.no_grad():
        block.user_query.weight.zero_()
    feats, ids = _inputs()
    out = block(feats, ids)
    users = torch.randn(3, 8)
    torch.testing.assert_close(block.score_all(users, out.parts, out.keys), users @ out.fused.T)


def test_user_scoring_requires_the_conditioned_block():
    block = AttentionFusion(IN_DIMS, dim=8)
    feats, ids = _inputs()
    out = block(feats, ids)
    with pytest.raises(RuntimeError, match="user_conditioned"):
        block.score_all(torch.randn(2, 8), out.parts, out.keys)
    with pytest.raises(ValueError, match="ID embeddings"):
        block(feats)


def test_attention_without_id_part():
    block = AttentionFusion(IN_DIMS, dim=8, include_id=False)
    feats, _ = _inputs()
    out = block(feats)
    assert block.part_names == ("image", "audio", "text") and out.weights.shape == (7, 3)


def test_reset_parameters_is_deterministic_for_a_seed():
    torch.manual_seed(3)
    a = AttentionFusion(IN_DIMS, dim=8, user_conditioned=True)
    torch.manual_seed(3)
    b = AttentionFusion(IN_DIMS, dim=8, user_conditioned=True)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    with torch.no_grad():
        a.projections.proj["image"].weight.zero_()
    torch.manual_seed(5)
    a.reset_parameters()
    torch.manual_seed(5)
    b.reset_parameters()
    assert a.projections.proj["image"].weight.abs().sum() > 0
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


# ---------------------------------------------------------------------- score head
def test_mlp_head_all_items_scores_match_pairwise_forward():
    torch.manual_seed(0)
    head = MLPScoreHead(dim=8, hidden_dims=(6, 5))
    users, items = torch.randn(4, 8), torch.randn(9, 8)
    all_scores = head.score_all(users, items, chunk_elems=100)  # several user chunks
    assert all_scores.shape == (4, 9)
    pairwise = head(users.repeat_interleave(9, 0), items.repeat(4, 1)).view(4, 9)
    torch.testing.assert_close(all_scores, pairwise)
    assert "3x8" in repr(head)


def test_mlp_head_uses_the_elementwise_product():
    head = MLPScoreHead(dim=2, hidden_dims=())
    with torch.no_grad():
        head.mlp[0].weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0]]))
        head.mlp[0].bias.zero_()
    users, items = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0], [0.5, 0.5]])
    # with only the product block on, the head is the dot product
    torch.testing.assert_close(head.score_all(users, items), users @ items.T)


# ---------------------------------------------------------------------- helpers
@pytest.mark.parametrize("names", [(), ("id",), ("a.b",), ("x", "x"), ("bias",), ("",)])
def test_bad_modality_names_are_rejected(names):
    with pytest.raises(ValueError):
        check_modality_names(names)
