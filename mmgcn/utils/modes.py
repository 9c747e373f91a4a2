"""Module modes: run a block in eval mode and give the module back in the mode it was in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def eval_mode(module: Any) -> Iterator[Any]:
    """``with eval_mode(model): ...`` -- ``model.eval()`` for the block, then the module's
    own mode again (training stays training, eval stays eval), also when the block raises.

    Every ranking path (evaluation, recommend, explanations, new-item representations) runs
    under it: a model may behave differently while training (dropout, FREEDOM's pruned
    graph), and a caller in the middle of training must get its training mode back.
    """
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
