"""Feature transforms: fitted on train items with content only, saved with the model, applied to new items."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mmgcn.features.transforms import FeatureTransform, fit_feature_transforms
from mmgcn.models import build_model

X = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 2.0], [5.0, 5.0, -1.0], [100.0, -7.0, 40.0]])


def test_zscore_by_hand_on_the_fitting_rows_only():
    rows = np.array([True, True, True, False])  # the last row (an outlier) must not count
    t = FeatureTransform(3, "zscore").fit(X, rows)
    # column 0 over rows 0-2: mean 3, population std sqrt(8/3); column 1 constant
    torch.testing.assert_close(t.mean, torch.tensor([[3.0, 5.0, 1.0]]))
    torch.testing.assert_close(t.std[0, 0], torch.tensor((8 / 3) ** 0.5))
    z = t(X)
    torch.testing.assert_close(z[:3, 0], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4, rtol=0)
    assert (z[:3, 1] == 0).all() and torch.isfinite(z).all()  # constant column: zeros, not NaN
    # the unfitted row is transformed with the fitted statistics, not its own
    torch.testing.assert_close(z[3, 0], (100.0 - 3.0) / t.std[0, 0])
    assert int(t.fitted_rows) == 3


def test_modes():
    fit = FeatureTransform(3, "zscore").fit(X)
    for mode, expected in (
        ("standard", fit(X) / 3**0.5),
        ("zscore+l2", torch.nn.functional.normalize(fit(X), dim=1)),
        ("l2", X / X.norm(dim=1, keepdim=True)),
        ("none", X),
    ):
        t = FeatureTransform(3, mode).fit(X)
        torch.testing.assert_close(t(X), expected)
    wide = torch.randn(500, 64) * 5 + 3
    standard = FeatureTransform(64, "standard").fit(wide)(wide)
    assert abs(standard.pow(2).sum(1).mean().item() - 1.0) < 1e-4
    with pytest.raises(ValueError, match="unknown feature transform"):
        FeatureTransform(3, "minmax")
    with pytest.raises(ValueError, match="shape"):
        FeatureTransform(3, "zscore")(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="no rows to fit"):
        FeatureTransform(3, "zscore").fit(X, np.zeros(4, dtype=bool))


def test_statistics_travel_in_the_state_dict():
    t = FeatureTransform(3, "zscore").fit(X)
    state = t.state_dict()
    assert set(state) == {"mean", "std", "fitted_rows"}
    fresh = FeatureTransform(3, "zscore")
    assert not torch.allclose(fresh(X), t(X))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(X), t(X))


def test_fit_feature_transforms_skips_cold_items_and_items_without_content():
    feats = {"a": X, "b": X[:, :2] * 2}
    in_train = np.array([True, True, False, True])
    masks = {"a": np.array([True, True, True, False])}
    out = fit_feature_transforms(feats, in_train, masks, mode={"a": "zscore", "b": "zscore"})
    # a: rows with a train edge AND content = 0, 1; b: every row with a train edge = 0, 1, 3
    torch.testing.assert_close(out["a"].mean, X[[0, 1]].mean(0, keepdim=True))
    torch.testing.assert_close(out["b"].mean, (X[[0, 1, 3], :2] * 2).mean(0, keepdim=True))


@pytest.mark.parametrize("name,config", [
    ("mmgcn", {"standardize_features": True}),
    ("vbpr", {"standardize_features": True}),
    ("concat", {"feature_norm": "zscore"}),
])
def test_models_fit_on_train_items_and_save_the_transform(tiny_dataset, name, config):
    """Item 4 has no train edge (tiny_dataset): moving its features must not change the
    statistics, the representation of any warm item, nor the saved state."""
    model = build_model(name, tiny_dataset, config)
    warm = np.flatnonzero(tiny_dataset.items_in_train)
    for m, feats in tiny_dataset.features.items():
        torch.testing.assert_close(model.transforms[m].mean, feats[warm].mean(0, keepdim=True))
        assert f"transforms.{m}.mean" in model.state_dict()
    shifted = {m: f.clone() for m, f in tiny_dataset.features.items()}
    for f in shifted.values():
        f[4] += 50.0
    twin = build_model(name, dataclasses.replace(tiny_dataset, features=shifted), config)
    for m in tiny_dataset.features:
        torch.testing.assert_close(twin.transforms[m].mean, model.transforms[m].mean)
        torch.testing.assert_close(twin.transforms[m].std, model.transforms[m].std)
