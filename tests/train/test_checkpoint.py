"""Checkpoints: atomic saves keep the previous file, restricted loads, random-state round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import mmgcn.utils.io as io_module
from mmgcn.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"epoch": 1, "weights": torch.arange(4.0)})

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "weights": torch.zeros(4)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left behind


def test_unserialisable_state_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"epoch": 3})
    with pytest.raises(Exception):  # noqa: B017 -- pickling a lambda fails inside torch.save
        save_checkpoint(path, {"epoch": 4, "callback": lambda: None})
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


class Payload:
    def __reduce__(self):
        return (print, ("this would run on a plain torch.load",))


def test_load_refuses_arbitrary_objects_and_garbage(tmp_path):
    hostile = tmp_path / "hostile.pt"
    torch.save({"format": 1, "x": Payload()}, hostile)
    with pytest.raises(ValueError, match="hostile.pt: not a readable mmgcn checkpoint"):
        load_checkpoint(hostile)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(1)}, other)
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002 -- the legacy global state is what is captured
    torch.manual_seed(3)
    np.random.normal()  # noqa: NPY002 -- leaves a cached gaussian in the legacy state
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = (random.random(), np.random.random(3).tolist(), np.random.normal(), torch.rand(3))  # noqa: NPY002
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.random(3).tolist(), np.random.normal(), torch.rand(3))  # noqa: NPY002
    assert again[:3] == expected[:3] and torch.equal(again[3], expected[3])
