"""Every registered model takes its hyperparameters from one frozen config dataclass
(``models/configs.py``): keywords override it, an unknown key is refused by name, and
``hyperparameters()`` rebuilds the same model."""

from __future__ import annotations

import dataclasses

import pytest

from recloop import Recommender
from recloop.errors import ConfigError
from recloop.models import available, create
from recloop.models.configs import (
    ContentConfig,
    EASEConfig,
    HybridConfig,
    LightGCNConfig,
    MFConfig,
    MLPConfig,
    NeuMFConfig,
    PopularityConfig,
    SASRecConfig,
    as_jsonable,
)
from recloop.models.online_bias import WithOnlineBias

CONFIGS = {
    "popularity": PopularityConfig,
    "mf": MFConfig,
    "lightgcn": LightGCNConfig,
    "neumf": NeuMFConfig,
    "mlp": MLPConfig,
    "ease": EASEConfig,
    "sasrec": SASRecConfig,
    "hybrid": HybridConfig,
    "content": ContentConfig,
}


def test_every_registered_model_has_a_config() -> None:
    assert sorted(CONFIGS) == available()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_config_holds_the_defaults_and_hyperparameters_round_trip(name: str) -> None:
    model = create(name, seed=0)
    inner = model.inner if isinstance(model, WithOnlineBias) else model
    assert isinstance(inner.config, CONFIGS[name])  # type: ignore[attr-defined]
    h = model.hyperparameters()
    if name != "hybrid":  # hybrid's parts' settings come back whole, not as overrides
        expected = as_jsonable(CONFIGS[name]())
        assert {k: v for k, v in h.items() if k != "online_bias_lr"} == expected
    assert create(name, seed=0, **h).hyperparameters() == h


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_an_unknown_key_is_refused_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match="not_a_setting"):
        Recommender(model=name, not_a_setting=1)


def test_keywords_override_the_config_and_a_config_object_is_accepted() -> None:
    model = create("sasrec", dim=32, n_heads=4)
    assert (model.config.dim, model.config.n_heads, model.config.max_len) == (32, 4, 10)  # type: ignore[attr-defined]
    given = SASRecConfig(max_len=5)
    model = create("sasrec", config=given, dim=16)
    assert model.config == dataclasses.replace(given, dim=16)  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        given.max_len = 7  # type: ignore[misc]


def test_the_online_offset_wraps_any_model_on_request() -> None:
    assert not isinstance(create("mf"), WithOnlineBias)
    assert isinstance(create("mf", online_bias_lr=0.02), WithOnlineBias)
    assert isinstance(create("hybrid"), WithOnlineBias)  # hybrid's default
    assert create("hybrid").hyperparameters()["online_bias_lr"] == 0.03
