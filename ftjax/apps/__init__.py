"""The applications: a registry from name to factory; each app lives in its own module."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ftjax.apps.protocol import (
    Application,
    ArrayCandidates,
    ArrayPatches,
    CandidateSource,
    PatchSource,
)

# name -> "module:factory"; a factory is ``make(data, preset, seed) -> Application``.
_REGISTRY: dict[str, str | Callable[..., Application]] = {}
PAPER_APPS = ("pe", "polyp", "frames", "cimt")


def register(name: str, factory: str | Callable[..., Application]) -> None:
    """Make ``--app=name`` available (a callable, or a lazy ``"module:function"`` path)."""
    _REGISTRY[name] = factory


def _factory(name: str) -> Callable[..., Application]:
    if ":" in name and name not in _REGISTRY:
        register(name, name)
    if name not in _REGISTRY:
        known = ", ".join(available()) or "none"
        later = f" ('{name}' is one of the paper's applications, not implemented yet)" \
            if name in PAPER_APPS else ""
        raise ValueError(f"unknown app {name!r}{later}; available: {known}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory


def train_presets(name: str) -> dict[str, dict]:
    """The app's own trainer defaults per preset (its factory's ``train_presets`` attribute), e.g.
    fewer epochs for a large smoke data set; the command line still overrides them."""
    return dict(getattr(_factory(name), "train_presets", {}))


def available() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make_app(name: str, data: str = "synthetic", preset: str = "smoke",
             seed: int = 0) -> Application:
    """Build application ``name`` on ``data`` (``synthetic`` or ``dataset:path``).

    ``name`` may also be ``module:function`` naming a user's own application factory.
    """
    return _factory(name)(data=data, preset=preset, seed=seed)


register("pe", "ftjax.apps.pe:make")

__all__ = ["Application", "ArrayCandidates", "ArrayPatches", "CandidateSource", "PatchSource",
           "available", "make_app", "register", "train_presets"]
