"""Small helpers shared by every layer: atomic file writes, hashing, seeding, logging.

``seed_everything`` is imported on first use, so that importing :mod:`mmgcn.utils.io`
(every layer does) does not import torch.
"""

from typing import Any

from mmgcn.utils.io import atomic_write, atomic_write_bytes, atomic_write_json, sha256_file

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "sha256_file", "seed_everything"]


def __getattr__(name: str) -> Any:
    if name == "seed_everything":
        from mmgcn.utils.seed import seed_everything

        return seed_everything
    raise AttributeError(f"module 'mmgcn.utils' has no attribute {name!r}")
