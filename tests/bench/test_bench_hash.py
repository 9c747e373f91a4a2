"""Config fields added after cells were committed leave the finished cells' hashes alone at
the value of the behaviour before them (``legacy_values``) and enter the hash otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from mmgcn.bench.config import BenchConfig, ModelSpec, config_hash
from mmgcn.bench.runner import TrainerRunner, hashed_view
from mmgcn.models.mmgcn_plus import MMGCNPlusConfig

ADDED = ("ssl_weight", "ssl_noise_eps", "ssl_temperature")


def resolved(values):
    return TrainerRunner(progress=False).resolve(ModelSpec.parse("mmgcn-plus"), values, {}, BenchConfig())


def test_added_fields_at_their_defaults_are_not_hashed():
    model = resolved({"item_graph_k": 10})["model"]
    assert not set(ADDED) & set(model)
    # the payload is the one the config had before the fields existed: every other field, as set
    before = {f.name: getattr(MMGCNPlusConfig(item_graph_k=10), f.name) for f in dataclasses.fields(MMGCNPlusConfig)
              if f.name not in ADDED}
    assert model == {k: list(v) if isinstance(v, tuple) else v for k, v in before.items()}


@pytest.mark.parametrize(("key", "value"), [("ssl_weight", 0.02), ("ssl_noise_eps", 0.2), ("ssl_temperature", 0.5)])
def test_an_added_field_set_away_from_its_default_is_hashed(key, value):
    plain, changed = resolved({}), resolved({key: value})
    assert changed["model"][key] == value
    assert config_hash(plain) != config_hash(changed)
    assert config_hash(resolved({key: getattr(MMGCNPlusConfig(), key)})) == config_hash(plain)


def test_ordinary_fields_are_hashed_at_their_defaults():
    assert resolved({})["model"]["content_dropout"] == 0.0


@pytest.mark.parametrize(("key", "value"), [("negatives", "train-items"), ("precision", "bf16"), ("compile", True),
                                                ("calibration_tolerance", 0.02)])
def test_trainer_keys_follow_the_same_rule(key, value):
    runner, spec = TrainerRunner(progress=False), ModelSpec.parse("lightgcn")
    plain = runner.resolve(spec, {}, {}, BenchConfig())["train"]
    assert key not in plain  # at its default: out of the hash, as before the key existed
    assert runner.resolve(spec, {}, {key: value}, BenchConfig())["train"][key] == value


def test_a_new_default_that_changes_behaviour_is_hashed_except_at_its_legacy_value():
    """``legacy_values``: the scale grid of MMGCN+'s calibration is on by default (a new
    behaviour, so hashed) and leaves the hash only at (1.0,), the behaviour of the cells run
    before it -- also when YAML gives it as a list."""
    assert MMGCNPlusConfig.legacy_values["calibrate_new_scales"] == (1.0,)
    default = resolved({})["model"]
    assert default["calibrate_new_scales"] == [1.0, 2.0, 3.0, 4.0]
    legacy = resolved({"calibrate_new_scales": [1.0]})["model"]
    assert "calibrate_new_scales" not in legacy
    assert {k: v for k, v in default.items() if k != "calibrate_new_scales"} == legacy
    assert config_hash(resolved({"calibrate_new_scales": (1.0,)})) == config_hash(resolved({"calibrate_new_scales": [1.0]}))
    assert config_hash(resolved({})) != config_hash(resolved({"calibrate_new_scales": [1.0]}))
    assert config_hash(resolved({"calibrate_new_scales": [1.0, 2.0]})) != config_hash(resolved({}))


def test_a_later_change_of_a_default_enters_the_hash():
    """The legacy value is written out, not read from the default: had a later version made
    SimGCL-style contrast MMGCN+'s default, its cells would hash apart from the committed
    ones (run without it) instead of silently restoring them."""
    @dataclasses.dataclass(frozen=True)
    class Later(MMGCNPlusConfig):
        ssl_weight: float = 0.05

    assert hashed_view(Later())["ssl_weight"] == 0.05
    assert "ssl_weight" not in hashed_view(Later(ssl_weight=0.0))
    assert "ssl_weight" not in hashed_view(MMGCNPlusConfig())


def test_a_legacy_value_must_name_a_field():
    @dataclasses.dataclass(frozen=True)
    class Misspelt(MMGCNPlusConfig):
        legacy_values = {**MMGCNPlusConfig.legacy_values, "ssl_wieght": 0.0}

    with pytest.raises(TypeError, match=r"Misspelt.legacy_values names no field \['ssl_wieght'\]"):
        hashed_view(Misspelt())


def test_every_registered_config_names_real_fields_in_its_legacy_values():
    """A misspelt legacy name would otherwise surface only when a cell of that model is
    hashed: every registered model's config class (and the trainer's) lists fields it has,
    and each resolves, hashed, at its defaults."""
    from mmgcn.models.base import available_models, model_class
    from mmgcn.train.config import TrainConfig

    runner = TrainerRunner(progress=False)
    classes = {TrainConfig, *(model_class(name).Config for name in available_models())}
    assert MMGCNPlusConfig in classes and len(classes) > 10
    for cls in classes:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.legacy_values) <= fields, (cls.__name__, sorted(set(cls.legacy_values) - fields))
    for name in available_models():
        runner.resolve(ModelSpec.parse(name), {}, {}, BenchConfig())
