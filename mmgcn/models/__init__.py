"""Recommenders behind one API, built by name from the registry.

Importing this package registers the built-in models.
"""

from mmgcn.models import fusion  # noqa: F401 -- registers concat, attention and -graph variants
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    available_models,
    build_config,
    build_model,
    model_class,
    register_model,
)

__all__ = [
    "Embeddings",
    "ModelConfig",
    "Recommender",
    "available_models",
    "build_config",
    "build_model",
    "model_class",
    "register_model",
]
