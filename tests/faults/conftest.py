"""The fault suite's guard: every case has a hard time limit, so a hang fails instead of
stalling CI. ``@pytest.mark.fault_timeout(s)`` sets a case's limit (default 60 s)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fault_server.py

DEFAULT_LIMIT_S = 60.0


class CaseTimeout(Exception):
    """A fault case ran past its limit: the code under test hangs."""


@pytest.fixture(autouse=True)
def hard_timeout(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("fault_timeout")
    limit = float(marker.args[0]) if marker else DEFAULT_LIMIT_S

    def expire(signum, frame):
        raise CaseTimeout(f"{request.node.name}: still running after {limit:g} s -- a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield limit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------- a small world for CLI cases
@pytest.fixture(scope="session")
def world_dataset():
    from mmgcn.data.synthetic import make_synthetic

    return make_synthetic(40, 25, modalities={"image": 6, "text": 4}, interactions_per_user=6, seed=0, progress=False)


@pytest.fixture
def world(world_dataset, monkeypatch):
    """The CLI's dataset loaders return ``world_dataset`` ("other" data for ``split=random``
    or ``data_dir="/other"``: valid and test swapped, so its fingerprint differs)."""
    import mmgcn.cli.train as cli_train
    import mmgcn.train.loading as loading
    from mmgcn.data.dataset import Dataset

    d = world_dataset
    other = Dataset(d.name, d.n_users, d.n_items, d.train, d.test, d.valid, features=dict(d.features))

    def load(name, data_dir=None, **kwargs):
        return other if kwargs.get("split") == "random" or str(data_dir) == "/other" else d

    monkeypatch.setattr(cli_train, "load_dataset", load)
    monkeypatch.setattr(loading, "load_dataset", load)
    return d
