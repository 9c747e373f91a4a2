"""The automatic batch size: 2048 on the benchmark datasets, bounded steps per epoch beyond."""

from __future__ import annotations

import pytest

from mmgcn.models import build_model
from mmgcn.train.config import TrainConfig, auto_batch_size
from mmgcn.train.trainer import Trainer


@pytest.mark.parametrize(
    ("n_train", "expected"),
    [
        (1, 2048),
        (59_541, 2048),        # TikTok
        (118_551, 2048),       # Amazon Baby
        (262_144, 2048),       # 128 steps of 2048: the last size at 2048
        (262_145, 4096),
        (819_298, 8192),       # the 1M-interaction synthetic dataset of benchmarks/large_defaults.py
        (1_048_576, 8192),
        (1_048_577, 16384),
        (10**9, 32768),        # capped
    ],
)
def test_auto_batch_size(n_train, expected):
    assert auto_batch_size(n_train) == expected


def test_trainer_uses_it_unless_given(tiny_dataset):
    model = build_model("bpr", tiny_dataset)
    assert Trainer(model, tiny_dataset, TrainConfig(progress=False)).batch_size == 2048
    assert Trainer(model, tiny_dataset, TrainConfig(batch_size=3, progress=False)).batch_size == 3
    with pytest.raises(ValueError, match="batch_size must be positive"):
        TrainConfig(batch_size=0)
