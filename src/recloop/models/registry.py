"""Models by name."""

from __future__ import annotations

from typing import Any

from recloop.errors import UnknownModelError
from recloop.models.base import RecModel

_REGISTRY: dict[str, type[RecModel]] = {}
_loaded = False


def register(cls: type[RecModel]) -> type[RecModel]:
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create(name: str, seed: int = 0, **hyperparameters: Any) -> RecModel:
    """The model ``name`` built with ``hyperparameters`` (its config's fields as keywords).

    ``online_bias_lr`` (default: ``ONLINE_BIAS_DEFAULTS``, else none) wraps it in
    ``WithOnlineBias``, an online item offset on its scores.
    """
    _load_builtin()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise UnknownModelError(
            f"model: unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        )
    from recloop.models.configs import ONLINE_BIAS_DEFAULTS

    bias_lr = hyperparameters.pop("online_bias_lr", ONLINE_BIAS_DEFAULTS.get(name))
    model = cls(seed=seed, **hyperparameters)
    if bias_lr is None:
        return model
    from recloop.models.online_bias import WithOnlineBias

    return WithOnlineBias(model, bias_lr)


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in (
        "popularity",
        "mf",
        "neumf",
        "sasrec",
        "lightgcn",
        "mlp",
        "ease",
        "hybrid",
        "content",
    ):
        try:
            importlib.import_module(f"recloop.models.{module}")
        except ModuleNotFoundError as exc:  # a model file not written yet
            if exc.name != f"recloop.models.{module}":
                raise
