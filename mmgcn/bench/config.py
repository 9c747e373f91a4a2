"""Benchmark configuration: which models, seeds, protocol and settings a ``mmgcn bench`` run uses.

A benchmark YAML file maps onto :class:`BenchConfig` (unknown keys are errors) plus an
optional ``full:`` section of overrides that ``--full`` applies on top (the complete
protocol: more epochs, patience, seeds) and an optional ``cold-start:`` section (top level
or inside ``full:``) applied only under ``--protocol cold-start``, e.g.::

    dataset: tiktok
    models: [mmgcn, lightgcn, popular]
    seeds: 2
    train: {epochs: 30, patience: 5}
    model_configs:
      mmgcn: {dim: 64}
    grids:
      lightgcn:
        params: {num_layers: [1, 2], reg_weight: [1.0e-4, 1.0e-3]}
        select_on: valid          # the only accepted value: "test" is refused
      mmgcn[image]: null          # a spec-name entry wins over the registry name's; null = no grid
    cold-start:
      model_configs:
        mmgcn-plus: {content_dropout: 0.2}
    full:
      seeds: 3
      train: {epochs: 300, patience: 20}

Precedence (lowest first): :class:`BenchConfig` defaults < file < ``full:`` section (with
``--full``) < ``cold-start:`` sections (with ``--protocol cold-start``; the one inside
``full:`` last) < command-line flags. Each layer merges into the ones below it field by
field, except that a file section's (``full:``, ``cold-start:``) grid for a model replaces
that model's grid whole (see :func:`overlay`); command-line values always merge. Model
specs may name a modality subset for ablations: ``mmgcn[visual]``,
``mmgcn[visual+acoustic]`` (see :class:`ModelSpec`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmgcn.config import ConfigError, from_dict, load_yaml, merge

DEFAULT_MODELS = ("mmgcn", "mmgcn-faithful", "concat", "attention", "lightgcn", "vbpr", "bpr", "popular")
PROTOCOLS = ("standard", "cold-start")
# the only split a model or a hyper-parameter may be selected on
SELECTABLE_SPLITS = ("valid", "validation")
# applied by --full when the file has no ``full:`` section: MMRec's complete protocol
FULL_DEFAULTS: dict[str, Any] = {"seeds": 3, "train": {"epochs": 300, "patience": 20}}
# the config section of overrides applied only under ``protocol: cold-start``
COLD_START_SECTION = "cold-start"

_SPEC_RE = re.compile(
    r"^(?P<base>[a-z0-9][a-z0-9_-]*)(?:\[(?P<mods>[A-Za-z0-9_+-]+)\])?(?::(?P<variant>[a-z0-9][a-z0-9_-]*))?$"
)
_METRIC_RE = re.compile(r"^[a-z_]+@[0-9]+$")
# load_dataset's keyword-only arguments (a test keeps this in step with its signature)
_DATASET_KWARGS = frozenset({"convention", "split", "seed", "modalities", "download", "verify", "cached_features",
                             "card"})


def _refuse_test_selection(value: str, where: str) -> str:
    if value not in SELECTABLE_SPLITS:
        raise ConfigError(
            f"{where}: select_on={value!r} is refused; models and hyper-parameters are selected on "
            f"the validation split only (set select_on: valid) -- the test split is looked at "
            f"once, after selection, so that the reported figures are not tuned on it"
        )
    return "valid"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model list: a registry name, an optional modality subset and an
    optional variant label.

    ``"mmgcn"`` -> ``ModelSpec("mmgcn", "mmgcn", None)`` (all modalities);
    ``"mmgcn[visual+acoustic]"`` -> ``ModelSpec(..., "mmgcn", ("visual", "acoustic"))``,
    trained on ``dataset.select_modalities(("visual", "acoustic"))``;
    ``"mmgcn-plus:linear"`` -> a *variant* of ``mmgcn-plus``: another row of the same table
    whose settings come from ``model_configs`` / ``model_train`` / ``grids`` entries under
    its full name (e.g. one ablation step), on top of the registry name's.
    """

    name: str
    base: str
    modalities: tuple[str, ...] | None = None
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        match = _SPEC_RE.match(text)
        if not match:
            raise ConfigError(
                f"model spec {text!r}: expected a registry name, optionally with a modality subset "
                f"in brackets and a variant label after a colon, e.g. 'mmgcn', 'mmgcn[visual+acoustic]' "
                f"or 'mmgcn-plus:linear'"
            )
        mods = match.group("mods")
        modalities = tuple(m for m in mods.split("+") if m) if mods else None
        if modalities is not None and len(set(modalities)) != len(modalities):
            raise ConfigError(f"model spec {text!r}: a modality is named twice")
        return cls(text, match.group("base"), modalities, match.group("variant"))

    @property
    def dirname(self) -> str:
        """A file-system-safe directory name for this spec (``:`` becomes ``@``)."""
        return self.name.replace(":", "@")


@dataclass(frozen=True)
class GridConfig:
    """A small hyper-parameter grid for one model, selected on the VALIDATION split.

    Args:
        params: ``{model-config key: [candidate values]}``; the grid is their product
            (trainer settings with a ``train.`` prefix, e.g. ``train.lr``).
        variants: hand-picked combinations (``[{key: value, ...}, ...]``), each crossed with
            the product of ``params`` (or alone when ``params`` is empty).
        select_on: the split the grid is selected on; only ``"valid"`` is accepted
            (``"test"`` raises :class:`ConfigError`).
        seeds: the seeds every point is trained with (default ``()``: the benchmark's first
            seed); the point with the best mean validation value over them wins.

    Each point is trained like a benchmark cell (early stopping on the benchmark's
    validation ``metric``) but with the test split never evaluated; only the selected
    configuration is ever tested, as the benchmark's cells.
    """

    params: dict[str, list[Any]] = field(default_factory=dict)
    variants: tuple[dict[str, Any], ...] = ()
    select_on: str = "valid"
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "select_on", _refuse_test_selection(self.select_on, "grid"))
        if not self.params and not self.variants:
            raise ConfigError("grid: 'params' and 'variants' are empty; give at least one key with a list of values")
        for key, values in self.params.items():
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise ConfigError(f"grid: params.{key} must be a non-empty list of values, got {values!r}")
        for variant in self.variants:
            if not isinstance(variant, Mapping):
                raise ConfigError(f"grid: variants must be mappings of key: value, got {variant!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"grid: a seed is listed twice in {list(self.seeds)}")

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid, in a stable order (variants outermost, then the
        first key of ``params`` varies slowest)."""
        product: list[dict[str, Any]] = [{}]
        for key in self.params:
            product = [{**p, key: v} for p in product for v in self.params[key]]
        variants = [dict(v) for v in self.variants] or [{}]
        return [{**variant, **point} for variant in variants for point in product]


@dataclass(frozen=True)
class BenchConfig:
    """Resolved settings of one benchmark run.

    Args:
        dataset: dataset name for :func:`mmgcn.data.registry.load_dataset` (default ``"tiktok"``).
        models: model specs in table order (default: :data:`DEFAULT_MODELS`).
        seeds: number of seeds per model; seeds are ``first_seed .. first_seed + seeds - 1``
            (default 3).
        model_seeds: per-model number of seeds, by spec name or registry name (e.g. more
            seeds for the models a comparison rests on, fewer for ablations).
        first_seed: the first seed (default 0).
        ks: cut-offs of the test metrics (default ``(10, 20, 50)``).
        metric: validation metric for early stopping and grid selection (default ``"recall@20"``).
        select_on: split that drives early stopping and grids; only ``"valid"`` (default).
        protocol: ``"standard"`` (full ranking, seen items masked) or ``"cold-start"``
            (adds warm / cold test breakdown) (default ``"standard"``).
        baseline: model spec every other model is compared with (default ``"mmgcn"``; when
            it is not in ``models``, the first model listed is the reference instead).
        comparisons: extra ``[model, reference]`` pairs to compare; they join the Holm
            family of the table. Either side may be a selector ``"best:a,b,c"``: the model
            among ``a, b, c`` with the best mean *validation* value of the selection metric
            over its seeds (e.g. ``["best:mmgcn-plus,freedom", "best:lightgcn,sgl,simgcl"]``:
            the validation-selected best content model against the best ID-only one).
        significance_metrics: per-user test metrics of the comparisons
            (default ``("recall@20", "ndcg@20")``).
        train: trainer settings for every model (keys of ``mmgcn.train.trainer.TrainConfig``).
        model_train: per-model trainer overrides, by spec name or registry name.
        model_configs: per-model config overrides, by spec name or registry name.
        grids: per-model :class:`GridConfig`, by spec name or registry name.
        dataset_kwargs: keyword arguments for the dataset loader (e.g. split convention).
        data_dir: raw data directory (default: ``$MMGCN_DATA``).
        out: results root; tables land in ``<out>/<dataset>/`` (default ``"benchmarks/results"``).
        device: torch device (default ``"cpu"``).
        mode: ``"quick"`` or ``"full"`` (set by ``--full``; recorded in the results header).
        budget_note: one line printed in the header: what these settings are meant to cost.
    """

    dataset: str = "tiktok"
    models: tuple[str, ...] = DEFAULT_MODELS
    seeds: int = 3
    model_seeds: dict[str, int] = field(default_factory=dict)
    first_seed: int = 0
    ks: tuple[int, ...] = (10, 20, 50)
    metric: str = "recall@20"
    select_on: str = "valid"
    protocol: str = "standard"
    baseline: str = "mmgcn"
    comparisons: tuple[tuple[str, str], ...] = ()
    significance_metrics: tuple[str, ...] = ("recall@20", "ndcg@20")
    train: dict[str, Any] = field(default_factory=dict)
    model_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    grids: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    out: str = "benchmarks/results"
    device: str = "cpu"
    mode: str = "quick"
    budget_note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "select_on", _refuse_test_selection(self.select_on, "bench config"))
        if not self.dataset or "/" in self.dataset or self.dataset.startswith("."):
            raise ConfigError(f"bench config: dataset {self.dataset!r} is not a valid dataset name")
        if not self.models:
            raise ConfigError("bench config: 'models' is empty; name at least one model")
        specs = [ModelSpec.parse(m) for m in self.models]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"bench config: a model is listed twice in {names}")
        object.__setattr__(self, "models", tuple(names))
        check_specs_against_registry(specs)
        pairs = []
        for pair in self.comparisons:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ConfigError(f"bench config: comparisons entries must be [model, reference] pairs, got {pair!r}")
            sides = []
            for side in pair:
                candidates = selector_candidates(str(side))
                unknown = [m for m in candidates if ModelSpec.parse(m).name not in names]
                if unknown:
                    raise ConfigError(f"bench config: comparisons {list(pair)} name {unknown}, not in models {names}")
                sides.append(str(side) if str(side).startswith(BEST_PREFIX) else ModelSpec.parse(str(side)).name)
            pairs.append(tuple(sides))
        object.__setattr__(self, "comparisons", tuple(pairs))
        if self.seeds < 1:
            raise ConfigError(f"bench config: seeds must be >= 1, got {self.seeds}")
        for key, value in self.model_seeds.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"bench config: model_seeds.{key} must be an integer >= 1, got {value!r}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"bench config: ks must be positive integers, got {list(self.ks)}")
        for name in (self.metric, *self.significance_metrics):
            if not _METRIC_RE.match(name):
                raise ConfigError(f"bench config: metric {name!r} must look like 'recall@20'")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"bench config: protocol {self.protocol!r} is not one of {list(PROTOCOLS)}")
        if self.mode not in ("quick", "full"):
            raise ConfigError(f"bench config: mode {self.mode!r} must be 'quick' or 'full'")
        if not isinstance(self.dataset_kwargs, Mapping):
            raise ConfigError(f"bench config: dataset_kwargs must be a mapping of load_dataset arguments, "
                              f"got {self.dataset_kwargs!r}")
        unknown = sorted(set(self.dataset_kwargs) - _DATASET_KWARGS)
        if unknown:
            raise ConfigError(f"bench config: dataset_kwargs {unknown} are not load_dataset arguments; expected "
                              f"some of {sorted(_DATASET_KWARGS)} (in --set, YAML needs a space after each "
                              f"colon: 'dataset_kwargs={{convention: files, split: null}}')")
        grids = {}
        for key, grid in self.grids.items():
            if grid is None:  # an explicit "no grid" for this spec, e.g. an ablation of a gridded model
                grids[key] = None
            elif isinstance(grid, GridConfig):
                grids[key] = grid
            elif isinstance(grid, Mapping):
                grids[key] = from_dict(GridConfig, grid, where=f"grids.{key}")
            else:
                raise ConfigError(f"bench config: grids.{key} must be a mapping with 'params'")
        object.__setattr__(self, "grids", grids)
        for section in ("model_train", "model_configs"):
            for key, value in getattr(self, section).items():
                if not isinstance(value, Mapping):
                    raise ConfigError(f"bench config: {section}.{key} must be a mapping, got {value!r}")

    # ------------------------------------------------------------------ views
    @property
    def specs(self) -> tuple[ModelSpec, ...]:
        return tuple(ModelSpec.parse(m) for m in self.models)

    @property
    def reference(self) -> str:
        """The model every other one is tested against: ``baseline`` if it runs, else the first model."""
        return self.baseline if self.baseline in self.models else self.models[0]

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The default seeds (``first_seed ..``); :meth:`seeds_for` gives a model's own."""
        return tuple(range(self.first_seed, self.first_seed + self.seeds))

    def seeds_for(self, spec: ModelSpec) -> tuple[int, ...]:
        """The seeds of ``spec``: ``model_seeds`` by spec name, then registry name, else ``seeds``."""
        count = self.model_seeds.get(spec.name, self.model_seeds.get(spec.base, self.seeds))
        return tuple(range(self.first_seed, self.first_seed + count))

    @property
    def results_name(self) -> str:
        """Folder name of this run's results under ``out``: the dataset, then ``-<protocol>``
        if not standard, then ``-quick`` unless ``--full`` (so that a quick preview never
        overwrites the results of a full run)."""
        name = self.dataset if self.protocol == "standard" else f"{self.dataset}-{self.protocol}"
        return name if self.mode == "full" else f"{name}-quick"

    def model_config_for(self, spec: ModelSpec) -> dict[str, Any]:
        """Model config overrides for ``spec``: registry-name entry, then spec-name entry on top."""
        return _layered(self.model_configs, spec)

    def train_config_for(self, spec: ModelSpec) -> dict[str, Any]:
        """Trainer settings for ``spec``: ``train``, then per-model ``model_train`` entries."""
        return merge(dict(self.train), _layered(self.model_train, spec))

    def grid_for(self, spec: ModelSpec) -> GridConfig | None:
        """The spec-name entry if there is one (``null`` = no grid), else the registry name's."""
        if spec.name in self.grids:
            return self.grids[spec.name]
        return self.grids.get(spec.base)


def check_specs_against_registry(specs: Sequence[ModelSpec]) -> None:
    """Every spec names a registered model, and only content models take a modality subset.

    Raises:
        ConfigError: an unknown model name (listing the registered ones), or a modality
            suffix on a model that reads no item content (``bpr[text]``: an ID-only model
            would silently train without any content, so the "ablation" would be a copy of
            the plain model).
    """
    from mmgcn.models.base import model_class

    for spec in specs:
        cls = model_class(spec.base)
        if spec.modalities is not None and not getattr(cls, "uses_content", False):
            raise ConfigError(
                f"model spec {spec.name!r}: {spec.base!r} reads no item content (ID only), so a modality "
                f"subset [{'+'.join(spec.modalities)}] means nothing; write {spec.base!r}, or use a content "
                f"model (e.g. mmgcn, vbpr, concat, attention) for a modality ablation"
            )


BEST_PREFIX = "best:"


def selector_candidates(side: str) -> list[str]:
    """``"best:a,b"`` -> ``["a", "b"]``; a plain model name -> ``[name]``."""
    if side.startswith(BEST_PREFIX):
        names = [n.strip() for n in side[len(BEST_PREFIX):].split(",") if n.strip()]
        if not names:
            raise ConfigError(f"bench config: selector {side!r} names no model")
        return names
    return [side]


def _layered(table: Mapping[str, Mapping[str, Any]], spec: ModelSpec) -> dict[str, Any]:
    """The registry name's entry, then the spec's without its variant (``mmgcn[image]``), then
    the full spec name's (``mmgcn[image]:linear``), each on top of the previous."""
    out: dict[str, Any] = dict(table.get(spec.base, {}))
    without_variant = spec.name.split(":")[0]
    for key in dict.fromkeys((without_variant, spec.name)):
        if key != spec.base:
            out = merge(out, table.get(key, {}))
    return out


def config_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys): a cell's identity."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot hash object of type {type(obj).__name__}")


def load_bench_config(
    path: str | os.PathLike | None = None,
    *,
    full: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> BenchConfig:
    """Build a :class:`BenchConfig`: defaults < file ``path`` < its ``full:`` section < its
    ``cold-start:`` section < ``overrides``.

    A ``cold-start:`` section (top level, or inside ``full:``: both apply under ``--full``,
    the latter last) holds overrides for runs with ``protocol: cold-start`` only -- e.g. the
    calibration of new items' scores, moot where every item has train edges, without
    touching the standard cells' settings (and hashes).

    Args:
        path: a benchmark YAML file, or ``None`` for the built-in defaults.
        full: apply the file's ``full:`` section (or :data:`FULL_DEFAULTS` if it has none)
            and record ``mode: full``.
        overrides: values from the command line (already parsed), applied last.

    Raises:
        ConfigError: unknown keys, bad types, ``select_on: test`` anywhere.
    """
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    where = str(path) if path is not None else "bench config"
    cli_models = bool((overrides or {}).get("models"))
    if path is not None and not cli_models and (not data or ("models" in data and not data["models"])):
        # an empty file (or `models:` left empty) would otherwise run every default model for hours
        raise ConfigError(
            f"{where}: {'is empty' if not data else 'field models is empty'}, so the benchmark has no cells; "
            f"add 'models: [mmgcn, lightgcn, ...]' or pass --models"
        )
    full_section = data.pop("full", None)
    if full_section is not None and not isinstance(full_section, Mapping):
        raise ConfigError(f"{where}: 'full' must be a mapping of overrides, got {full_section!r}")
    cold_sections = [_pop_section(data, COLD_START_SECTION, where)]
    if full_section is not None:
        full_section = dict(full_section)
        cold_sections.append(_pop_section(full_section, COLD_START_SECTION, f"{where}: full"))
    if "mode" in data:
        raise ConfigError(f"{where}: 'mode' is set by --full, not in the file")
    if full:
        data = overlay(data, full_section if full_section is not None else FULL_DEFAULTS)
        data["mode"] = "full"
    else:
        cold_sections = cold_sections[:1]
    protocol = (overrides or {}).get("protocol", data.get("protocol"))
    if protocol == "cold-start":
        for section in cold_sections:
            data = overlay(data, section)
    if overrides:
        # command-line values are edits of single fields (--set grids.vbpr.seeds=[0,1]): they merge
        data = merge(data, dict(overrides))
    try:
        return from_dict(BenchConfig, data, where=where)
    except ConfigError as exc:
        if where in str(exc):
            raise
        raise ConfigError(f"{where}: {exc}") from exc


def overlay(data: Mapping[str, Any], section: Mapping[str, Any]) -> dict[str, Any]:
    """``section`` on top of ``data``: a nested merge, except that a model's ``grids:`` entry
    is replaced whole.

    A grid is one set of points: a later section's grid for a model is that model's grid,
    not its params added to the earlier ones' (a ``cold-start:`` rate grid would otherwise
    multiply with the ``full:`` grid's other params). The other models' entries stay.
    """
    out = merge(data, {key: value for key, value in section.items() if key != "grids"})
    if "grids" in section:
        grids, earlier = section["grids"], data.get("grids")
        out["grids"] = ({**earlier, **grids} if isinstance(grids, Mapping) and isinstance(earlier, Mapping)
                        else grids)
    return out


def _pop_section(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    section = data.pop(key, None)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: {key!r} must be a mapping of overrides, got {section!r}")
    for forbidden in ("protocol", "mode", "full"):
        if forbidden in section:
            raise ConfigError(f"{where}: {key!r} cannot set {forbidden!r} (it applies when the protocol is cold-start)")
    return dict(section)


def parse_model_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"a,b,mmgcn[visual]"`` -> ``("a", "b", "mmgcn[visual]")`` (validated)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    specs = tuple(ModelSpec.parse(item).name for item in items if item.strip())
    if not specs:
        raise ConfigError("--models: no model named")
    return specs
