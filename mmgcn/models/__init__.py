"""Recommenders behind one API, built by name from the registry.

Importing this package registers the built-in models.
"""

# importing the model modules registers them: concat / attention(-graph) fusion models,
# mmgcn(-faithful), bpr, lightgcn, vbpr, popular, and the item-graph models freedom, lattice
from mmgcn.models import (  # noqa: F401
    freedom,
    fusion,
    lattice,
    lightgcn,
    mf,
    mmgcn,
    mmgcn_plus,
    popular,
    vbpr,
)
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    NewItemsUnsupportedError,
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
    "NewItemsUnsupportedError",
    "Recommender",
    "available_models",
    "build_config",
    "build_model",
    "model_class",
    "register_model",
]
