"""Shared fixtures: the real data directory, an isolated cache, a tiny hand-made dataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset

REPO = Path(__file__).resolve().parents[1]

# Unit tests run tiny tensors, where intra-op threads cost more than they give (and a
# loaded machine makes 2-thread tiny ops ~20x slower). MMGCN_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("MMGCN_TEST_THREADS", "1")))


def _real_data_root() -> Path | None:
    env = os.environ.get("MMGCN_DATA")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if (candidate / "tiktok").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets (``$MMGCN_DATA``). CI sets MMGCN_REQUIRE_DATA=1: absence fails there."""
    root = _real_data_root()
    if root is None:
        if os.environ.get("MMGCN_REQUIRE_DATA"):
            pytest.fail("MMGCN_DATA does not point at the real datasets but MMGCN_REQUIRE_DATA is set")
        pytest.skip("real datasets not available (set MMGCN_DATA)")
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own writable MMGCN_CACHE, so the user's cache is never touched."""
    cache = tmp_path_factory.mktemp("mmgcn-cache")
    monkeypatch.setenv("MMGCN_CACHE", str(cache))
    return cache


@pytest.fixture
def tiny_dataset() -> Dataset:
    """4 users x 5 items, hand-made, with two modalities.

    train: u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}
    valid: u0 {2}, u1 {3}
    test:  u0 {3}, u2 {4}    (item 4 is cold: no train edge)
    """
    def csr(pairs):
        rows, cols = zip(*pairs)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(4, 5))

    rng = np.random.default_rng(0)
    return Dataset(
        name="tiny",
        n_users=4,
        n_items=5,
        train=csr([(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 0)]),
        valid=csr([(0, 2), (1, 3)]),
        test=csr([(0, 3), (2, 4)]),
        features={
            "visual": rng.normal(size=(5, 6)).astype(np.float32),
            "acoustic": rng.normal(size=(5, 3)).astype(np.float32),
        },
    )
