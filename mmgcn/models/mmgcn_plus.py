r"""MMGCN+: MMGCN's idea -- one user-item graph per modality, fused with the ID signal --
with the changes the evidence on TikTok and ML-100K points at, each one switch.

MMGCN (Wei et al., ACM MM 2019, https://arxiv.org/abs/1908.09494) gives every modality its
own graph network over the user-item train graph, with ID embeddings added inside every
branch, and fuses the branches. On TikTok (median user: 2 train interactions) its per-node
nonlinear layers and per-modality user preferences overfit after about three epochs, its
content path scores items without interactions at chance, and it does not beat ID-only
LightGCN (the toolkit's README). MMGCN+ keeps per-modality user-item graphs and ID fusion,
and changes, one measured step at a time (each an ablation row of the benchmark,
``mmgcn-plus:<step>``):

1. **linear propagation** (LightGCN, He et al., SIGIR 2020) in every branch: no per-layer
   weights or nonlinearities, layers averaged; the ID signal is its own branch (LightGCN)
   and the modality branches are fused with it by summing their scores (an exact
   per-branch attribution). A modality branch propagates the item's content projection;
   its users start from zero by default (``user_preference=False``), so a user's modality
   representation is the graph-smoothed content of what they consumed: no per-user
   parameters to overfit;
2. **an item-item semantic graph** (FREEDOM, Zhou & Shen, MM 2023; LATTICE, Zhang et al.,
   MM 2021): the ID branch's items also aggregate the ID embeddings of their ``k`` most
   similar items by content (the modalities' kNN graphs, averaged). The graph links the
   items with train edges; an item without any (held out, or new) gets its row by a query
   against them (:func:`mmgcn.graph.knn_query_graph`), so it borrows the trained
   embeddings of the items it resembles;
3. **contrastive alignment** (InfoNCE, :func:`mmgcn.nn.losses.info_nce`) between each
   modality's content projection of an item and the item's ID-branch representation: the
   content path learns to point where the collaborative signal does;
4. **content-only dropout** (DropoutNet, Volkovs et al., NeurIPS 2017): while training, a
   share of the batch's items is scored with the representation it would have as a new
   item (no ID, no interactions) in the same BPR pairs as the others, so the content path
   learns to score alone and at the scale of full representations: new items can surface
   in the mixed ranking too;
5. **noise-perturbed contrast on the ID branch** (SimGCL, Yu et al., SIGIR 2022): two
   views of the ID branch, each propagated with uniform noise of radius :math:`\epsilon`
   after every hop (:func:`mmgcn.models.simgcl.sign_aligned_noise`), are pulled together
   per node and pushed apart across the batch (InfoNCE over the batch's distinct users and
   positive items). On TikTok the best ID-only model is SimGCL: this step asks whether
   MMGCN+ keeps that gain with its content branches on top. The modality branches are left
   out: their users have no parameters of their own to spread out.

With ID embeddings :math:`e`, the mean of the modalities' symmetric-normalised kNN graphs
:math:`\bar S` (no self loops), the symmetric-normalised user-item graph :math:`\hat A`,
and per modality the content projection :math:`c^m_i = W_m T_m(x^m_i)` (:math:`T_m` the
transform fitted on train items; zero where the item has no content of :math:`m`):

.. math::
    \tilde e_i = e_i + \beta \sum_j \bar S_{ij} e_j, \qquad
    (u^{id}, i^{id}) = \frac{1}{L+1}\sum_{l=0}^{L} \hat A^l (E_U, \tilde E_I), \qquad
    (u^{m}, i^{m}) = \frac{1}{L+1}\sum_{l=0}^{L} \hat A^l (P^m_U, C^m)

.. math::
    \hat y_{ui} = \langle u^{id}_u, i^{id}_i\rangle + \sum_m \langle u^m_u, i^m_i\rangle

(:math:`P^m_U` = 0 unless ``user_preference``). A new item -- no ID, no edge -- keeps layer
0 of its branches: :math:`i^{id} = \frac{\beta}{L+1}\sum_j \bar S_{qj} e_j`,
:math:`i^m = \frac{1}{L+1} c^m`. Layer 0 alone shrinks its scores towards 0 by up to
:math:`L+1` against an item with edges, so after training new items are scored
:math:`\lambda \hat y_{ui} + o`, the scale :math:`\lambda` and offset :math:`o` chosen on the
validation split (``calibrate_new_scales``, ``calibrate_new_items``; the ``:nocalib`` ablation
row turns this off).

Loss: BPR (items of the ``content_dropout`` share scored as new items) + ``reg_weight`` x
the batch L2 of the layer-0 embeddings (and ``reg_content`` x that of the batch items'
content projections) + ``align_weight`` x the mean over modalities of
InfoNCE(:math:`c^m_i`, :math:`i^{id}_i`) over the batch's distinct items with content +
``ssl_weight`` x (InfoNCE(:math:`u'_u, u''_u`) + InfoNCE(:math:`i'_i, i''_i`)) between two
perturbed views of the ID branch (the branch's own layer mean, noise added after each hop).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.features.transforms import check_mode, fit_feature_transforms
from mmgcn.graph import knn_adjacency, knn_query_graph, normalize_csr, scipy_to_torch_csr
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.models.simgcl import sign_aligned_noise
from mmgcn.nn.content import check_new_item_features
from mmgcn.nn.losses import bpr_loss, info_nce, l2_reg
from mmgcn.nn.propagation import BipartitePropagation, GraphPropagation, layer_mean_propagation
from mmgcn.utils.modes import eval_mode

ID = "id"


@dataclass(frozen=True)
class MMGCNPlusConfig(ModelConfig):
    r"""Configuration of :class:`MMGCNPlus` (the switches from ``item_graph_k`` on are the ablation steps).

    Attributes:
        dim: width of every branch (default 64).
        reg_weight: L2 on the batch's layer-0 embeddings (default 1e-4).
        num_layers: user-item propagation layers :math:`L` (default 3).
        feature_transform: transform fitted on train items (default ``"standard"``).
        user_preference: learned per-modality user preferences :math:`P^m_U` (MMGCN's;
            default ``False``: users' modality representations are propagated content only).
        reg_content: L2 on the batch items' content projections (default 0.0).
        item_graph_k: neighbours per item in the kNN graphs (default 10; 0 = no item graph).
        item_graph_weight: :math:`\beta` (default 1.0).
        align_weight: weight of the content-to-ID InfoNCE (default 0.0 = off).
        align_temperature: its temperature (default 0.2).
        content_dropout: share of the batch's items scored as new items (default 0.0 = off).
        ssl_weight: weight of the ID branch's noise-perturbed contrast (SimGCL's
            :math:`\lambda`; default 0.0 = off).
        ssl_noise_eps: its noise radius :math:`\epsilon` (default 0.1, SimGCL's).
        ssl_temperature: its temperature (default 0.2).
        new_item_bias: learn a score offset :math:`b` for items represented as new items
            (trained by the dropped items' BPR pairs; default ``True``, used only with
            ``content_dropout``).
        calibrate_new_items: offsets :math:`o` of the scores of items represented as new
            items to try on the VALIDATION split after training, in units of the average
            gap between a user's 1st and 20th score (default ``-2, -1.75, ..., 1``, 13
            values; ``()`` = no calibration): content-only scores lack the collaborative
            evidence of known items, and a calibrated score lets new items compete in the
            mixed ranking when that improves validation (the trainer picks it:
            ``Recommender.calibration_candidates``).
        calibrate_new_scales: multipliers :math:`\lambda` of new items' representations tried
            with every offset (default ``(1, 2, 3, 4)``, i.e. up to :math:`L+1`): a new item
            keeps only layer 0 of the :math:`L+1` layers averaged into a known item, so its
            scores are shrunk towards 0 by up to :math:`L+1` (on TikTok the validation-chosen
            :math:`\lambda` is 3-4, with a negative offset). A new item is scored
            :math:`\lambda \hat y_{ui} + o`; both are kept in the model's state.
    """

    # step 5 came after the committed benchmark cells: off (weight 0; its two settings then
    # unused at these values), it leaves their hashes alone. The scale grid came later still:
    # the cells committed before it ran without one (1.0 only).
    legacy_values: ClassVar[Mapping[str, object]] = {"ssl_weight": 0.0, "ssl_noise_eps": 0.1, "ssl_temperature": 0.2,
                                                     "calibrate_new_scales": (1.0,)}

    dim: int = 64
    reg_weight: float = 1e-4
    num_layers: int = 3
    feature_transform: str = "standard"
    user_preference: bool = False
    reg_content: float = 0.0
    item_graph_k: int = 10
    item_graph_weight: float = 1.0
    align_weight: float = 0.0
    align_temperature: float = 0.2
    content_dropout: float = 0.0
    ssl_weight: float = 0.0
    ssl_noise_eps: float = 0.1
    ssl_temperature: float = 0.2
    new_item_bias: bool = True
    calibrate_new_items: tuple[float, ...] = tuple(k / 4 for k in range(-8, 5))
    calibrate_new_scales: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)

    def __post_init__(self) -> None:
        check_mode(self.feature_transform)
        if self.dim <= 0 or self.num_layers < 0 or self.item_graph_k < 0:
            raise ValueError(f"dim must be positive and num_layers, item_graph_k >= 0 (got {self.dim}, "
                             f"{self.num_layers}, {self.item_graph_k})")
        for name in ("reg_weight", "reg_content", "item_graph_weight", "align_weight", "ssl_weight", "ssl_noise_eps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.align_temperature <= 0 or self.ssl_temperature <= 0:
            raise ValueError(f"align_temperature and ssl_temperature must be positive, got "
                             f"{self.align_temperature}, {self.ssl_temperature}")
        if not 0.0 <= self.content_dropout < 1.0:
            raise ValueError(f"content_dropout must be in [0, 1), got {self.content_dropout}")
        if any(not -10.0 < o < 10.0 for o in self.calibrate_new_items):
            raise ValueError(f"calibrate_new_items must be offsets in (-10, 10), got {list(self.calibrate_new_items)}")
        if not self.calibrate_new_scales or any(not 0.0 < s <= 10.0 for s in self.calibrate_new_scales):
            raise ValueError(f"calibrate_new_scales must be one or more multipliers in (0, 10], got "
                             f"{list(self.calibrate_new_scales)}")
        if not self.calibrate_new_items:
            # no calibration: the scale grid is moot, and kept neutral (one config, one hash)
            object.__setattr__(self, "calibrate_new_scales", (1.0,))


@register_model
class MMGCNPlus(Recommender):
    """MMGCN+ (see the module docstring for the model and its five steps)."""

    name: ClassVar[str] = "mmgcn-plus"
    Config: ClassVar[type[ModelConfig]] = MMGCNPlusConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: MMGCNPlusConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        if not dataset.features:
            raise ValueError(f"{self.name} needs item features, but dataset {dataset.name!r} has none; "
                             f"extract features first (mmgcn extract) or use an ID-only model")
        self.modalities = tuple(dataset.features)
        if ID in self.modalities:
            raise ValueError(f"{self.name}: a modality may not be called {ID!r}")
        self.transforms = fit_feature_transforms(dataset.features, dataset.items_in_train, dataset.content_masks,
                                                 config.feature_transform)
        for m in self.modalities:
            self.register_buffer(f"features_{m}", self.transforms[m](dataset.features[m]), persistent=False)
        present = torch.stack([torch.from_numpy(dataset.has_content(m).copy()) for m in self.modalities])
        self.register_buffer("content_present", present, persistent=False)  # (M, n_items)
        self.graph = BipartitePropagation(dataset.train, "sym")
        # kNN graphs among the items with train edges (and content); the others' rows by query
        self._catalogue: dict[str, tuple[np.ndarray, sp.csr_matrix]] = {}
        self.item_graph: GraphPropagation | None = None
        if config.item_graph_k:
            warm = dataset.items_in_train
            graphs = []
            for m in self.modalities:
                mask = warm & dataset.has_content(m)
                adjacency = knn_adjacency(self.features(m), config.item_graph_k, mask=mask, include_self=False,
                                          cache=True)
                self._catalogue[m] = (mask, adjacency)
                graph = normalize_csr(adjacency, "sym")
                edgeless = np.flatnonzero(~warm)
                if edgeless.size:
                    rows = self._query_rows(m, self.features(m)[torch.from_numpy(edgeless)],
                                            dataset.has_content(m)[edgeless]).tocoo()
                    graph = graph + sp.csr_matrix((rows.data, (edgeless[rows.row], rows.col)), shape=graph.shape)
                graphs.append(graph)
            mean = sp.csr_matrix(sum(graphs) / len(graphs))
            self.item_graph = GraphPropagation(scipy_to_torch_csr(mean), symmetric=False)
        d = config.dim
        self.user_id = nn.Parameter(torch.empty(self.n_users, d))
        self.item_id = nn.Parameter(torch.empty(self.n_items, d))
        self.preferences = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(self.n_users, d)) for m in self.modalities} if config.user_preference else {})
        self.projections = nn.ModuleDict(
            {m: nn.Linear(int(dataset.features[m].shape[1]), d, bias=False) for m in self.modalities})
        # the new-item score offset b (a "bias" part: users 1, catalogue items 0, new items b)
        self.new_bias = nn.Parameter(torch.zeros(())) if config.new_item_bias and config.content_dropout > 0 else None
        # the validation-calibrated scale and offset of new items' scores (saved with the model)
        self.register_buffer("new_item_offset", torch.zeros(()))
        self.register_buffer("new_item_scale", torch.ones(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.user_id, self.item_id, *self.preferences.values()):
            nn.init.xavier_normal_(table)
        for linear in self.projections.values():
            nn.init.xavier_uniform_(linear.weight)

    def features(self, modality: str) -> Tensor:
        """``(n_items, d_m)`` transformed features of ``modality``."""
        return getattr(self, f"features_{modality}")

    def _query_rows(self, modality: str, queries: Tensor, query_present: np.ndarray) -> sp.csr_matrix:
        """Normalised rows ``(n_query, n_items)`` of new items in modality ``modality``'s frozen graph."""
        mask, adjacency = self._catalogue[modality]
        return knn_query_graph(queries, self.features(modality), self.config.item_graph_k, adjacency=adjacency,
                               norm="sym", mask=mask, query_mask=query_present)

    # ------------------------------------------------------------ building blocks
    def _content(self, modality: str, features: Tensor, present: Tensor) -> Tensor:
        r""":math:`c^m` ``(n, d)``: projected transformed features, zero where absent."""
        return self.projections[modality](features) * present.unsqueeze(1).to(features.dtype)

    def _id_items0(self, neighbours: Tensor | None) -> Tensor:
        r"""The ID branch's layer-0 items :math:`\tilde e_i` (ID plus weighted kNN neighbours)."""
        return self.item_id if neighbours is None else self.item_id + self.config.item_graph_weight * neighbours

    def _perturbed_id_branch(self, items0: Tensor) -> tuple[Tensor, Tensor]:
        """One noise-perturbed view of the ID branch: its layer mean with SimGCL's noise of
        radius ``ssl_noise_eps`` added after every hop (layer 0 unperturbed, as in the branch)."""
        eps = self.config.ssl_noise_eps
        users, items = self.user_id, items0
        user_sum, item_sum = users, items
        for _ in range(self.config.num_layers):
            users, items = self.graph(users, items)
            if eps > 0:
                users = users + sign_aligned_noise(users, eps)
                items = items + sign_aligned_noise(items, eps)
            user_sum, item_sum = user_sum + users, item_sum + items
        scale = 1.0 / (self.config.num_layers + 1)
        return user_sum * scale, item_sum * scale

    def _branches(self) -> tuple[dict[str, tuple[Tensor, Tensor]], Tensor | None, dict[str, Tensor]]:
        """``({branch: (users, items)}, the items' aggregated kNN neighbours (or
        None), {modality: c^m})``, every branch propagated."""
        neighbours = self.item_graph(self.item_id) if self.item_graph is not None else None
        items0 = self._id_items0(neighbours)
        branches = {ID: layer_mean_propagation(self.graph, self.user_id, items0, self.config.num_layers)}
        contents = {}
        for k, m in enumerate(self.modalities):
            contents[m] = self._content(m, self.features(m), self.content_present[k])
            users0 = self.preferences[m] if m in self.preferences else self.user_id.new_zeros(self.n_users, self.config.dim)
            branches[m] = layer_mean_propagation(self.graph, users0, contents[m], self.config.num_layers)
        return branches, neighbours, contents

    def _assemble(self, branches: Mapping[str, tuple[Tensor, Tensor]], new: bool = False) -> Embeddings:
        """Concatenated branches: the score is the sum of the branches' dot products (plus,
        with a learned new-item offset, a ``"bias"`` part: 0 for catalogue items, b for new)."""
        parts = dict(branches)
        if self.new_bias is not None or self.config.calibrate_new_items:
            users = next(iter(parts.values()))[0]
            n_items = next(iter(parts.values()))[1].shape[0]
            value = self.new_item_offset + (self.new_bias if self.new_bias is not None else 0.0)
            value = value if new else torch.zeros_like(value)
            parts["bias"] = (users.new_ones(users.shape[0], 1), value.expand(n_items, 1))
        return Embeddings(torch.cat([u for u, _ in parts.values()], dim=1),
                          torch.cat([i for _, i in parts.values()], dim=1), parts)

    def _as_new(self, neighbours: Tensor | None, contents: Mapping[str, Tensor],
                users: Mapping[str, Tensor]) -> Embeddings:
        """``n`` items with no ID and no edge: layer 0 of each branch over :math:`L+1`.
        ``neighbours``: their aggregated kNN neighbours ``(n, d)`` (or ``None``);
        ``contents[m]``: their :math:`c^m` ``(n, d)``."""
        scale = self.new_item_scale / (self.config.num_layers + 1)
        n = next(iter(contents.values())).shape[0]
        item_id = (self.user_id.new_zeros(n, self.config.dim) if neighbours is None
                   else self.config.item_graph_weight * neighbours * scale)
        branches = {ID: (users[ID], item_id)}
        branches.update({m: (users[m], contents[m] * scale) for m in self.modalities})
        return self._assemble(branches, new=True)

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        return self._assemble(self._branches()[0])

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        branches, neighbours, contents = self._branches()
        emb = self._assemble(branches)
        item_vecs = emb.items
        batch_items = torch.unique(torch.cat([pos, neg]))
        if self.config.content_dropout > 0:
            drop = torch.rand(batch_items.numel(), device=batch_items.device) < self.config.content_dropout
            dropped = batch_items[drop]
            if dropped.numel():
                # scored as new items would be: no ID, no interactions
                alone = self._as_new(None if neighbours is None else neighbours[dropped],
                                     {m: c[dropped] for m, c in contents.items()},
                                     {b: u for b, (u, _) in branches.items()})
                item_vecs = item_vecs.index_copy(0, dropped, alone.items)
        user_vecs = emb.users[users]
        pos_scores = (user_vecs * item_vecs[pos]).sum(1)
        neg_scores = (user_vecs * item_vecs[neg]).sum(1)
        reg_terms = [self.user_id[users], self.item_id[pos], self.item_id[neg]]
        reg_terms += [p[users] for p in self.preferences.values()]
        loss = bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * l2_reg(*reg_terms)
        if self.config.reg_content > 0:
            loss = loss + self.config.reg_content * l2_reg(*(c[batch_items] for c in contents.values()))
        if self.config.align_weight > 0:
            collaborative = branches[ID][1][batch_items]
            terms = []
            for k, m in enumerate(self.modalities):
                has = self.content_present[k, batch_items]
                if int(has.sum()) > 1:
                    terms.append(info_nce(contents[m][batch_items][has], collaborative[has], self.config.align_temperature))
            if terms:
                loss = loss + self.config.align_weight * torch.stack(terms).mean()
        if self.config.ssl_weight > 0:
            items0 = self._id_items0(neighbours)
            users1, items1 = self._perturbed_id_branch(items0)
            users2, items2 = self._perturbed_id_branch(items0)
            u, i, t = torch.unique(users), torch.unique(pos), self.config.ssl_temperature
            loss = loss + self.config.ssl_weight * (info_nce(users1[u], users2[u], t) + info_nce(items1[i], items2[i], t))
        return loss

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """Content-only representations of unseen items (see :meth:`Recommender.represent_new_items`):
        no ID embedding, no interactions; their kNN rows are queried against the frozen graphs."""
        dims = {m: int(self.features(m).shape[1]) for m in self.modalities}
        device = self.item_id.device
        feats = check_new_item_features(features, dims, self.name, device)
        feats = {m: self.transforms[m](f) for m, f in feats.items()}
        n_new = next(iter(feats.values())).shape[0]
        mask = {m: torch.ones(n_new, dtype=torch.bool, device=device) if present is None
                else torch.as_tensor(present[m], dtype=torch.bool, device=device).reshape(n_new)
                for m in self.modalities}
        with eval_mode(self):
            branches, _, _ = self._branches()
            neighbours = None
            if self.item_graph is not None:
                rows = [self._query_rows(m, feats[m].cpu(), mask[m].cpu().numpy()) for m in self.modalities]
                mean = scipy_to_torch_csr(sp.csr_matrix(sum(rows) / len(rows))).to(device)
                neighbours = torch.sparse.mm(mean, self.item_id)
            contents = {m: self._content(m, feats[m], mask[m]) for m in self.modalities}
            return self._as_new(neighbours, contents, {b: u for b, (u, _) in branches.items()})

    # ------------------------------------------------------------ calibration
    @torch.no_grad()
    def calibration_candidates(self) -> list[dict[str, float]]:
        """Scales and offsets of new items' scores to try on validation (see
        ``calibrate_new_scales`` and ``calibrate_new_items``): every scale with every offset,
        offsets in multiples of the mean gap between users' 1st and 20th scores (over up to
        2,000 users, computed uncalibrated), the neutral scale 1 / offset 0 first (it wins
        ties). None when no item is ranked as a new item (``edgeless_items="own"`` or every
        item has train edges)."""
        if (not self.config.calibrate_new_items or self.config.edgeless_items != "content"
                or self.edgeless_item_ids.size == 0):
            return []
        with eval_mode(self):
            self.apply_calibration({"new_item_scale": 1.0, "new_item_offset": 0.0})
            emb = self.ranking_embed()
            users = torch.arange(min(self.n_users, 2000), device=emb.users.device)
            top = self.score(users, emb=emb).topk(min(20, self.n_items), dim=1).values
            gap = float((top[:, 0] - top[:, -1]).mean())
        grid = [{"new_item_scale": float(scale), "new_item_offset": factor * gap}
                for scale in self.config.calibrate_new_scales for factor in self.config.calibrate_new_items]
        neutral = {"new_item_scale": 1.0, "new_item_offset": 0.0}
        return [neutral, *(values for values in grid if values != neutral)]

    def apply_calibration(self, values: Mapping[str, float]) -> None:
        self.new_item_offset.fill_(float(values["new_item_offset"]))
        self.new_item_scale.fill_(float(values.get("new_item_scale", 1.0)))

    @torch.no_grad()
    def calibrated_embeddings(self, candidates: Sequence[Mapping[str, float]]) -> Iterator[Embeddings]:
        r"""As :meth:`Recommender.calibrated_embeddings`, with one forward pass: a candidate
        changes only the rows of the items represented as new (``edgeless_items="content"``),
        whose branch parts are their layer-0 vectors times :math:`\lambda / (L+1)`
        (``_as_new``) and whose ``"bias"`` part is the offset (plus the learned new-item
        bias). The pass runs at scale :math:`L+1`, where that factor is exactly 1, so each
        candidate's rows are the stored vectors times its factor, computed as ``_as_new``
        computes it: the same floats as a recomputation. On TikTok this saves one propagation
        and one kNN query of the edgeless items per candidate (52 by default)."""
        if not candidates:
            return
        rows = torch.from_numpy(self.edgeless_item_ids).to(self.item_id.device)
        if self.config.edgeless_items != "content" or rows.numel() == 0:
            yield from super().calibrated_embeddings(candidates)
            return
        self.apply_calibration({"new_item_scale": float(self.config.num_layers + 1), "new_item_offset": 0.0})
        layer0 = self.ranking_embed()
        for values in candidates:
            self.apply_calibration(values)
            factor = self.new_item_scale / (self.config.num_layers + 1)
            parts = {}
            for key, (users, items) in layer0.parts.items():
                items = items.clone()
                if key == "bias":
                    items[rows] += self.new_item_offset
                else:
                    items[rows] *= factor
                parts[key] = (users, items)
            yield Embeddings(layer0.users, torch.cat([i for _, i in parts.values()], dim=1), parts)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # models saved before the scale existed ranked new items at scale 1
        state_dict.setdefault(prefix + "new_item_scale", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, modalities={list(self.modalities)}, "
                f"item_graph={'on' if self.item_graph is not None else 'off'}")


__all__ = ["MMGCNPlus", "MMGCNPlusConfig"]
