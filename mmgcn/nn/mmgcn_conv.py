r"""The modality GCN of MMGCN: one layer (:class:`MMGCNConv`) and one modality's stack.

Wei et al., "MMGCN: Multi-modal Graph Convolution Network for Personalized Recommendation
of Micro-video", ACM MM 2019, https://arxiv.org/abs/1908.09494 (original code:
github.com/weiyinwei/MMGCN).

Nodes are users and items of the bipartite train graph; each modality runs its own stack
of layers on the same graph (:class:`~mmgcn.nn.propagation.BipartitePropagation`), with
user and item states kept as two tensors so that every hop is two half-size sparse
products instead of one over the square adjacency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgcn.nn.propagation import BipartitePropagation
from mmgcn.nn.subgraph import for_layer

COMBINES = ("concat", "ele")
LAYER_COMBINATIONS = ("last", "mean")


class MMGCNConv(nn.Module):
    r"""One MMGCN layer for one modality (equations 1, 5 and the combination of the paper).

    For node :math:`v` (user or item) with state :math:`x_v`, neighbours
    :math:`\mathcal N(v)` in the train graph and ID embedding :math:`e_v`:

    .. math::
        h_v &= \sigma\Big(\textstyle\bigoplus_{u \in \mathcal N(v)} W_a x_u\Big)
        \qquad \text{(aggregation; }\bigoplus = \text{mean or sum, by the graph's norm)}\\
        \hat x_v &= \sigma(W_s x_v + b_s) + e_v \\
        x'_v &= \begin{cases}
            \sigma\big(W_g [h_v \,\|\, \hat x_v] + b_g\big) & \text{combine = concat}\\
            \sigma\big(W_g h_v + b_g + \hat x_v\big) & \text{combine = ele}
        \end{cases}

    with :math:`\sigma` = LeakyReLU (the outer :math:`\sigma` is the identity when
    ``activate_output=False``: a linear output can take either sign). :math:`W_a` keeps
    the input width (as in the original code); the output has the ID width. The aggregation is done before the transform
    (:math:`(\hat A X) W_a = \hat A (X W_a)`): the sparse product then runs at the input
    width, and no ``(n_edges, d)`` message tensor is ever built.

    Args:
        in_dim: width of the incoming node states.
        out_dim: width of the output and of the ID embeddings.
        combine: ``"concat"`` (default) or ``"ele"`` (element-wise sum), see above.
        use_id: add the ID embedding in :math:`\hat x_v` (default ``True``); with ``False``
            ``user_id``/``item_id`` may be ``None``.
        negative_slope: LeakyReLU slope (default ``0.01``, PyTorch's and the original's).
        activate_output: apply LeakyReLU to the layer's output (default ``True``, as the
            original); ``False`` makes the combination linear.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        combine: str = "concat",
        use_id: bool = True,
        negative_slope: float = 0.01,
        activate_output: bool = True,
    ) -> None:
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        if in_dim <= 0 or out_dim <= 0:
            raise ValueError(f"in_dim and out_dim must be positive, got {in_dim}, {out_dim}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.combine, self.use_id, self.negative_slope = combine, use_id, negative_slope
        self.activate_output = activate_output
        self.aggregate_weight = nn.Linear(in_dim, in_dim, bias=False)
        self.self_weight = nn.Linear(in_dim, out_dim)
        self.combine_weight = nn.Linear(in_dim + out_dim if combine == "concat" else in_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.aggregate_weight, self.self_weight, self.combine_weight):
            nn.init.xavier_normal_(linear.weight)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def _update(self, neighbours: Tensor, own: Tensor, ids: Tensor | None) -> Tensor:
        h = self._act(self.aggregate_weight(neighbours))
        x_hat = self._act(self.self_weight(own))
        if self.use_id:
            x_hat = x_hat + ids
        if self.combine == "concat":
            out = self.combine_weight(torch.cat([h, x_hat], dim=1))
        else:
            out = self.combine_weight(h) + x_hat
        return self._act(out) if self.activate_output else out

    def forward(
        self,
        user_x: Tensor,
        item_x: Tensor,
        graph: BipartitePropagation,
        user_id: Tensor | None = None,
        item_id: Tensor | None = None,
        user_rows: Tensor | None = None,
        item_rows: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(users (n_users, in_dim), items (n_items, in_dim))`` -> ``(n_users, out_dim), (n_items, out_dim)``.

        ``user_id`` ``(n_users, out_dim)`` and ``item_id`` ``(n_items, out_dim)`` are the ID
        embeddings (required when ``use_id``). With ``user_rows`` / ``item_rows`` (int64
        ids) only those nodes' outputs are computed, ``(len(rows), out_dim)``: the dense
        transforms, which dominate the cost, then run on the requested rows only.
        """
        if self.use_id and (user_id is None or item_id is None):
            raise ValueError("MMGCNConv(use_id=True) needs user_id and item_id embeddings")
        user_neighbours, item_neighbours = graph(user_x, item_x)
        # a trimmed subgraph layer outputs only its first nodes (those the next layer reads)
        n_users, n_items = user_neighbours.shape[0], item_neighbours.shape[0]
        if n_users < user_x.shape[0]:
            user_x, user_id = user_x[:n_users], None if user_id is None else user_id[:n_users]
        if n_items < item_x.shape[0]:
            item_x, item_id = item_x[:n_items], None if item_id is None else item_id[:n_items]
        if user_rows is not None:
            user_neighbours, user_x = user_neighbours[user_rows], user_x[user_rows]
            user_id = user_id[user_rows] if user_id is not None else None
        if item_rows is not None:
            item_neighbours, item_x = item_neighbours[item_rows], item_x[item_rows]
            item_id = item_id[item_rows] if item_id is not None else None
        return (
            self._update(user_neighbours, user_x, user_id),
            self._update(item_neighbours, item_x, item_id),
        )

    def extra_repr(self) -> str:
        return (f"{self.in_dim}, {self.out_dim}, combine={self.combine!r}, use_id={self.use_id}, "
                f"activate_output={self.activate_output}")


class ModalityGCN(nn.Module):
    r"""One modality's graph network in MMGCN: input states, then ``num_layers`` layers.

    .. math::
        x^{(0)}_i = \mathrm{norm}(P f_i + b_P) \text{ (or } f_i \text{ raw)}, \qquad
        x^{(0)}_u = \mathrm{norm}(p_u), \qquad
        x^{(l+1)} = \mathrm{MMGCNConv}_l\big(\mathrm{drop}(x^{(l)})\big)

    where :math:`f_i` are the item's features of this modality, :math:`P` an optional
    linear projection, :math:`p_u` the user's learned preference in this modality,
    ``norm`` an optional row-wise L2 normalisation (as in the original) and ``drop``
    dropout at rate ``dropout`` (training only). The output is :math:`x^{(L)}`
    (``layer_combination="last"``, the original) or :math:`\frac1L\sum_{l=1}^{L} x^{(l)}`
    (``"mean"``, as LightGCN averages its layers). Items without train edges get no
    neighbour messages but still a content-based state through the self path of every
    layer (cold start).

    Args:
        n_users: number of users.
        feature_dim: width of the modality's item features.
        out_dim: output width (the ID embedding width).
        num_layers: number of :class:`MMGCNConv` layers (default ``2``).
        latent_dim: project features to this width first; ``None`` keeps them raw
            (default ``None``). The user preference has the resulting width.
        combine: ``"concat"`` or ``"ele"`` (default ``"concat"``).
        use_id: add ID embeddings in every layer (default ``True``).
        normalize_input: L2-normalise each node's input state (default ``True``).
        train_preference: whether the user preference is trained (default ``True``; the
            original code leaves it at its random init).
        negative_slope: LeakyReLU slope (default ``0.01``).
        output_activation: LeakyReLU on the last layer's output (default ``True``, as the
            original); ``False`` makes the last layer's combination linear.
        layer_combination: ``"last"`` (default) or ``"mean"`` of the layers' outputs.
        dropout: dropout rate on every layer's input states while training (default ``0``).
        preference_init_std: standard deviation of the normal init of the preference
            (default ``None``: Xavier normal, as the original, about ``0.015``). With
            ``normalize_input`` only the preference's direction matters, so its scale sets
            how fast Adam turns it: a larger init trains it more slowly.
    """

    def __init__(
        self,
        n_users: int,
        feature_dim: int,
        out_dim: int,
        num_layers: int = 2,
        latent_dim: int | None = None,
        combine: str = "concat",
        use_id: bool = True,
        normalize_input: bool = True,
        train_preference: bool = True,
        negative_slope: float = 0.01,
        output_activation: bool = True,
        layer_combination: str = "last",
        dropout: float = 0.0,
        preference_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if layer_combination not in LAYER_COMBINATIONS:
            raise ValueError(f"layer_combination must be one of {LAYER_COMBINATIONS}, got {layer_combination!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.normalize_input = normalize_input
        self.layer_combination, self.dropout = layer_combination, dropout
        self.preference_init_std = preference_init_std
        self.projection = nn.Linear(feature_dim, latent_dim) if latent_dim else None
        input_dim = latent_dim or feature_dim
        self.preference = nn.Parameter(torch.empty(n_users, input_dim), requires_grad=train_preference)
        dims = [input_dim] + [out_dim] * num_layers
        self.layers = nn.ModuleList(
            MMGCNConv(dims[k], dims[k + 1], combine, use_id, negative_slope,
                      activate_output=output_activation or k < num_layers - 1)
            for k in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.preference_init_std is None:
                nn.init.xavier_normal_(self.preference)
            else:
                nn.init.normal_(self.preference, std=self.preference_init_std)
        if self.projection is not None:
            nn.init.xavier_normal_(self.projection.weight)
            nn.init.zeros_(self.projection.bias)
        for layer in self.layers:
            layer.reset_parameters()

    def forward(
        self,
        features: Tensor,
        graph: BipartitePropagation,
        user_id: Tensor | None = None,
        item_id: Tensor | None = None,
        user_rows: Tensor | None = None,
        item_rows: Tensor | None = None,
        users: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``features (n_items, feature_dim)`` -> ``(users (n_users, out_dim), items (n_items, out_dim))``.

        ``user_rows`` / ``item_rows`` restrict the output (and the last layer's work) to
        those nodes; earlier layers still run on every node, since they feed neighbours.
        On a subgraph, ``graph`` spans only some users: ``users`` are their global ids
        (whose preferences start the user states), and ``features`` / ``user_id`` /
        ``item_id`` hold the subgraph's rows.
        """
        item_x = self.projection(features) if self.projection is not None else features
        user_x = self.preference if users is None else self.preference[users]
        if self.normalize_input:
            user_x, item_x = F.normalize(user_x, dim=1), F.normalize(item_x, dim=1)
        last = len(self.layers) - 1
        user_sum = item_sum = None
        for k, layer in enumerate(self.layers):
            rows = (user_rows, item_rows) if k == last else (None, None)
            if self.dropout > 0.0:
                user_x = F.dropout(user_x, self.dropout, self.training)
                item_x = F.dropout(item_x, self.dropout, self.training)
            user_x, item_x = layer(user_x, item_x, for_layer(graph, k, len(self.layers)), user_id, item_id, *rows)
            if self.layer_combination == "mean":
                user_k = user_x if k == last or user_rows is None else user_x[user_rows]
                item_k = item_x if k == last or item_rows is None else item_x[item_rows]
                user_sum = user_k if user_sum is None else user_sum + user_k
                item_sum = item_k if item_sum is None else item_sum + item_k
        if self.layer_combination == "mean":
            return user_sum / len(self.layers), item_sum / len(self.layers)
        return user_x, item_x


__all__ = ["COMBINES", "LAYER_COMBINATIONS", "MMGCNConv", "ModalityGCN"]
