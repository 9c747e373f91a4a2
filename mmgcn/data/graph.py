"""Moved to :mod:`mmgcn.graph.bipartite`; this module keeps the old import path working.

New code imports from :mod:`mmgcn.graph` (the graph toolkit: bipartite operators, item-item
kNN graphs, user-user co-interaction graphs, degree-sensitive pruning).
"""

from mmgcn.graph import bipartite as _bipartite
from mmgcn.graph.bipartite import *  # noqa: F401,F403  (the old names, one list: bipartite.__all__)
from mmgcn.graph.bipartite import Norm  # noqa: F401

__all__ = list(_bipartite.__all__)
