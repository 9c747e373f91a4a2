"""Small helpers shared by every layer: atomic file writes, hashing, seeding, logging."""

from mmgcn.utils.io import atomic_write, atomic_write_bytes, atomic_write_json, sha256_file
from mmgcn.utils.seed import seed_everything

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "sha256_file", "seed_everything"]
