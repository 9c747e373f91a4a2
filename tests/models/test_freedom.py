"""FREEDOM against its update rules on tiny hand-checked cases, pruning, cold and new items, resume."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.graph import bipartite_blocks_scipy, degree_sensitive_prune
from mmgcn.models import build_model
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint
from mmgcn.train.trainer import TrainConfig, Trainer


def _dataset(features: dict[str, np.ndarray], n_users: int = 4) -> Dataset:
    n_items = next(iter(features.values())).shape[0]
    # u0 {0, 1}, u1 {1, 2}, u2 {2, 3}, u3 {0}; the last item(s) have no train edge
    pairs = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 0)]
    rows, cols = zip(*pairs)
    train = sp.csr_matrix((np.ones(len(pairs), np.float32), (rows, cols)), shape=(n_users, n_items))
    valid = sp.csr_matrix(([1.0], ([0], [2])), shape=(n_users, n_items), dtype=np.float32)
    test = sp.csr_matrix(([1.0], ([1], [3])), shape=(n_users, n_items), dtype=np.float32)
    return Dataset("tiny-graph", n_users, n_items, train, valid, test, features=features)


# items 0/1 alike and 2/3 alike in "image"; 0/2 and 1/3 alike in "audio"; item 4: between
IMAGE = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.6, 0.5]], dtype=np.float32)
AUDIO = np.array([[1, 0, 0], [0, 1, 0], [0.9, 0, 0.1], [0, 0.9, 0.1], [0, 0, 1]], dtype=np.float32)


def _knn_dense(features: np.ndarray, k: int) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    out = np.zeros_like(sims)
    for i, row in enumerate(sims):
        out[i, np.argsort(-row, kind="stable")[:k]] = 1.0
    return out


def _sym_rows(adjacency: np.ndarray) -> np.ndarray:
    d = adjacency.sum(1)
    inv = np.where(d > 0, d ** -0.5, 0.0)
    return inv[:, None] * adjacency * inv[None, :]


def _lightgcn_mean(train: sp.csr_matrix, users: np.ndarray, items: np.ndarray, layers: int):
    to_users, to_items = (b.toarray() for b in bipartite_blocks_scipy(train, "sym"))
    sums_u, sums_i, u, i = users.copy(), items.copy(), users, items
    for _ in range(layers):
        u, i = to_users @ i, to_items @ u
        sums_u, sums_i = sums_u + u, sums_i + i
    return sums_u / (layers + 1), sums_i / (layers + 1)


def test_item_graph_is_the_weighted_mix_of_binary_knn_graphs():
    dataset = _dataset({"image": IMAGE, "audio": AUDIO})
    model = build_model("freedom", dataset, {"knn_k": 2, "modality_weights": {"image": 1.0, "audio": 3.0}})
    # every row has k = 2 entries, so sym with row sums is A / 2; weights normalised to 1/4, 3/4
    expected = 0.25 * _knn_dense(IMAGE, 2) / 2 + 0.75 * _knn_dense(AUDIO, 2) / 2
    np.testing.assert_allclose(model.item_graph.adjacency.to_dense().numpy(), expected, atol=1e-7)
    # hand check of one row: item 0's image neighbours {0, 1}, audio neighbours {0, 2}
    np.testing.assert_allclose(expected[0], [0.125 + 0.375, 0.125, 0.375, 0, 0])


def test_embed_follows_the_update_rules_and_ranking_uses_the_full_graph():
    dataset = _dataset({"image": IMAGE, "audio": AUDIO})
    model = build_model("freedom", dataset, {"knn_k": 2, "num_layers": 2, "item_layers": 2, "dim": 3})
    model.on_epoch_start(1, np.random.default_rng(0))  # the pruned graph must not reach ranking
    model.eval()
    emb = model.embed()
    users0, items0 = model.user_embedding.detach().numpy(), model.item_embedding.detach().numpy()
    users, items = _lightgcn_mean(dataset.train, users0, items0, 2)
    s = model.item_graph.adjacency.to_dense().numpy()
    np.testing.assert_allclose(emb.users.detach().numpy(), users, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb.items.detach().numpy(), items + s @ s @ items0, rtol=1e-5, atol=1e-6)
    scores = model.score(torch.arange(4), emb=emb).detach().numpy()
    parts = model.score_parts(torch.arange(4), emb=emb)
    np.testing.assert_allclose(sum(p.detach().numpy() for p in parts.values()), scores, rtol=1e-5, atol=1e-6)


def test_loss_is_bpr_plus_projection_bpr_on_the_pruned_graph():
    dataset = _dataset({"image": IMAGE, "audio": AUDIO})
    model = build_model("freedom", dataset, {"knn_k": 2, "prune_ratio": 0.5, "projection_weight": 0.3,
                                              "reg_weight": 0.01, "dim": 4})
    model.on_epoch_start(3, np.random.default_rng(11))
    pruned = degree_sensitive_prune(dataset.train, 0.5, np.random.default_rng(11))
    assert (model.train_graph.user_to_item.to_dense().numpy() != 0).sum() == pruned.nnz == 3
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 0])
    model.train()
    loss = model.loss(users, pos, neg)

    def softplus(x):
        return np.log1p(np.exp(x))

    u0, i0 = model.user_embedding.detach().numpy(), model.item_embedding.detach().numpy()
    mean_u, mean_i = _lightgcn_mean(pruned, u0, i0, 2)
    items = mean_i + model.item_graph.adjacency.to_dense().numpy() @ i0
    u = mean_u[users]
    expected = softplus((u * items[neg]).sum(1) - (u * items[pos]).sum(1)).mean()
    for m, feats in (("image", IMAGE), ("audio", AUDIO)):
        w, b = (p.detach().numpy() for p in model.projections[m].parameters())
        proj = feats @ w.T + b
        expected += 0.3 * softplus((u * proj[neg]).sum(1) - (u * proj[pos]).sum(1)).mean()
    expected += 0.01 * (u0[users] ** 2 + i0[pos] ** 2 + i0[neg] ** 2).sum() / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert model.content.tables["image"].grad is not None  # features are fine-tuned


def test_items_without_edges_are_reached_through_content_and_new_items_get_their_rows():
    dataset = _dataset({"image": IMAGE, "audio": AUDIO})
    model = build_model("freedom", dataset, {"knn_k": 2, "dim": 3})
    model.eval()
    emb = model.embed()
    graph_part = emb.parts["item_graph"][1].detach()
    assert graph_part[4].abs().sum() > 0  # item 4 has no train edge but content neighbours
    # a new item with item 1's content gets item 1's row of the frozen graph, and no ID/edges
    new = model.represent_new_items({"image": torch.from_numpy(IMAGE[[1]]), "audio": torch.from_numpy(AUDIO[[1]])})
    torch.testing.assert_close(new.items[0], graph_part[1])
    assert new.parts["interactions"][1].abs().sum() == 0
    # without audio content the new item is linked by its image neighbours only
    only_image = model.represent_new_items({"image": torch.from_numpy(IMAGE[[1]]), "audio": torch.zeros(1, 3)},
                                           present={"audio": torch.tensor([False])})
    s_image = _sym_rows(_knn_dense(IMAGE, 2))
    expected = 0.5 * s_image[1] @ model.item_embedding.detach().numpy()
    np.testing.assert_allclose(only_image.items[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lack"):
        model.represent_new_items({"image": torch.from_numpy(IMAGE[[1]])})


@pytest.mark.parametrize("names", [("poster",), ("a", "b", "c")])
def test_any_number_and_names_of_modalities(names):
    rng = np.random.default_rng(0)
    dataset = _dataset({m: rng.normal(size=(5, 3 + k)).astype(np.float32) for k, m in enumerate(names)})
    model = build_model("freedom", dataset, {"knn_k": 2})
    assert model.modalities == names and set(model.projections) == set(names)
    loss = model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([3]))
    loss.backward()
    assert torch.isfinite(loss)


def test_modality_weights_are_checked():
    dataset = _dataset({"image": IMAGE, "audio": AUDIO})
    with pytest.raises(ValueError, match="no weight for \\['audio'\\]"):
        build_model("freedom", dataset, {"modality_weights": {"image": 1.0}})
    with pytest.raises(ValueError, match="non-negative"):
        build_model("freedom", dataset, {"modality_weights": {"image": 1.0, "audio": -1.0}})
    # names the dataset lacks are ignored (a config survives a modality ablation)
    model = build_model("freedom", dataset.select_modalities(["image"]),
                        {"knn_k": 2, "modality_weights": {"image": 0.1, "audio": 0.9}})
    assert model.weights == {"image": 1.0}
    with pytest.raises(ValueError, match="prune_ratio"):
        build_model("freedom", dataset, {"prune_ratio": 1.0})


def _synthetic(n_users=40, n_items=30, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    clusters_u, clusters_i = rng.integers(0, 3, n_users), rng.integers(0, 3, n_items)
    prob = np.where(clusters_u[:, None] == clusters_i[None, :], 0.4, 0.03)
    dense = rng.random((n_users, n_items)) < prob
    split = rng.choice(3, size=dense.shape, p=[0.7, 0.15, 0.15]) * dense + dense
    split[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1
    train, valid, test = (sp.csr_matrix((split == s).astype(np.float32)) for s in (1, 2, 3))
    centres = rng.normal(size=(3, 8))
    features = {"image": (centres[clusters_i] + 0.3 * rng.normal(size=(n_items, 8))).astype(np.float32),
                "text": rng.normal(size=(n_items, 5)).astype(np.float32)}
    return Dataset("synthetic-graph", n_users, n_items, train, valid, test, features=features)


def test_trainer_resume_is_bit_identical_with_redrawn_pruned_graphs(tmp_path):
    dataset = _synthetic()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.01, patience=100, ks=(5,), metric="recall@5", seed=1,
                      progress=False)

    def fresh(seed):
        torch.manual_seed(seed)
        return build_model("freedom", dataset, {"knn_k": 3, "dim": 8, "prune_ratio": 0.5})

    straight = Trainer(fresh(0), dataset, cfg, tmp_path / "straight").fit()

    class Crash(Exception):
        pass

    def crash(record):
        if record["epoch"] == 2:
            raise Crash

    torch.manual_seed(0)
    with pytest.raises(Crash):
        Trainer(fresh(0), dataset, cfg, tmp_path / "resumed", callbacks=[crash]).fit()
    resumed = Trainer(fresh(9), dataset, cfg, tmp_path / "resumed", resume=True).fit()
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert resumed.test.metrics == straight.test.metrics
    a = load_checkpoint(tmp_path / "straight" / rd.LAST_CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "resumed" / rd.LAST_CHECKPOINT)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("content.tables.") for k in a)  # fine-tuned features are checkpointed


def test_feature_transform_is_fitted_on_train_items_and_saved_with_the_model():
    dataset = _dataset({"image": IMAGE, "audio": AUDIO})
    model = build_model("freedom", dataset, {"knn_k": 2, "feature_transform": "zscore"})
    transform = model.content.transforms["image"]
    assert int(transform.fitted_rows) == 4  # items 0-3 have train edges; item 4 has none
    torch.testing.assert_close(transform.mean, torch.from_numpy(IMAGE[:4].mean(0, keepdims=True)))
    state = model.state_dict()
    assert "content.transforms.image.mean" in state and "content.base_image" not in state
    # the frozen graph is built from the z-scored features, and new items go through the same transform
    z = (IMAGE - IMAGE[:4].mean(0)) / IMAGE[:4].std(0)
    torch.testing.assert_close(model.content.base("image"), torch.from_numpy(z.astype(np.float32)))
    model.eval()
    new = model.represent_new_items({"image": torch.from_numpy(IMAGE[[2]]), "audio": torch.from_numpy(AUDIO[[2]])})
    torch.testing.assert_close(new.items[0], model.embed().parts["item_graph"][1][2])
