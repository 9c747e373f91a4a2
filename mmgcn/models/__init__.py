"""Recommenders behind one API, built by name from the registry.

Importing this package registers the built-in models.
"""

# importing the model modules registers them: concat / attention(-graph) fusion models,
# mmgcn(-faithful), bpr, lightgcn, vbpr, popular, the item-graph models freedom, lattice,
# and the self-supervised sgl, simgcl, bm3, diffmm
from mmgcn.models import (  # noqa: F401
    bm3,
    diffmm,
    freedom,
    fusion,
    lattice,
    lightgcn,
    mf,
    mmgcn,
    mmgcn_plus,
    popular,
    sgl,
    simgcl,
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
