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


def available() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make_app(name: str, data: str = "synthetic", preset: str = "smoke",
             seed: int = 0) -> Application:
    """Build application ``name`` on ``data`` (``synthetic`` or ``dataset:path``).

    ``name`` may also be ``module:function`` naming a user's own application factory.
    """
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
    return factory(data=data, preset=preset, seed=seed)


__all__ = ["Application", "ArrayCandidates", "ArrayPatches", "CandidateSource", "PatchSource",
           "available", "make_app", "register"]
