"""Typed configs: unknown keys, type checks, nested configs and --set overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from mmgcn.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    ks: tuple[int, ...] = (10, 20)


@dataclass(frozen=True)
class Outer:
    name: str = "m"
    layers: int = 2
    fusion: Literal["mean", "sum"] = "mean"
    dropout: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_from_dict_coerces_and_nests():
    cfg = from_dict(Outer, {"layers": 3, "inner": {"lr": 1, "ks": [5]}})
    assert cfg.layers == 3
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.ks == (5,)
    assert to_dict(cfg)["inner"] == {"lr": 1.0, "ks": [5]}


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"layer": 3}, "unknown key(s) ['layer']"),
        ({"inner": {"learning_rate": 1}}, "inner: unknown key(s) ['learning_rate']"),
        ({"layers": "3"}, "layers: expected an integer"),
        ({"layers": True}, "layers: expected an integer"),
        ({"fusion": "concat"}, "fusion: 'concat' is not one of ['mean', 'sum']"),
        ({"inner": {"ks": "10"}}, "expected a list"),
    ],
)
def test_from_dict_rejects(data, fragment):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data)
    assert fragment in str(info.value)


def test_overrides_parse_yaml_values_and_dotted_keys():
    merged = apply_overrides({"inner": {"lr": 0.1, "ks": [1]}}, ["inner.lr=0.5", "layers=4", "dropout=null"])
    assert merged == {"inner": {"lr": 0.5, "ks": [1]}, "layers": 4, "dropout": None}
    cfg = from_dict(Outer, merged)
    assert cfg.dropout is None and cfg.layers == 4
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["layers"])


def test_load_yaml_is_safe_and_validates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(path)
    path.write_text("")
    assert load_yaml(path) == {}
