"""The applications: a registry from name to package.

Each application is one package, ``ftjax/apps/<name>/``, with ``app.py`` (its factory ``make``) and
``presets.py`` (its trainer presets and study facts, plain data): adding one touches its package
and one line here."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from ftjax.apps.protocol import (
    Application,
    ArrayCandidates,
    ArrayPatches,
    CandidateSource,
    PatchSource,
)

# name -> package holding app.py (``make``) and presets.py (``TRAIN``, ``STUDY``).
_PACKAGES: dict[str, str] = {
    "pe": "ftjax.apps.pe",
    "polyp": "ftjax.apps.polyp",
    "frames": "ftjax.apps.frames",
    "cimt": "ftjax.apps.cimt",
}


class UnknownApp(ValueError):
    """``--app`` names no application."""


def available() -> tuple[str, ...]:
    return tuple(sorted(_PACKAGES))


def _module(path: str) -> ModuleType:
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        raise UnknownApp(f"--app: cannot import {path!r} ({e})") from e


def _factory(name: str) -> Callable[..., Application]:
    """``make`` of a registered app, or a user's ``module:function``."""
    if name in _PACKAGES:
        return _module(f"{_PACKAGES[name]}.app").make
    module, sep, attr = name.partition(":")
    if not sep:
        raise UnknownApp(f"unknown app {name!r}; available: {', '.join(available())}, "
                         "or module:function for your own")
    factory = getattr(_module(module), attr, None)
    if not callable(factory):
        raise UnknownApp(f"--app={name}: {module!r} has no application factory {attr!r}")
    return factory


def train_presets(name: str) -> Mapping[str, Mapping[str, Any]]:
    """The app's trainer values per preset: ``presets.TRAIN`` of a registered app, or the
    ``train_presets`` attribute of a user's factory."""
    if name in _PACKAGES:
        return _module(f"{_PACKAGES[name]}.presets").TRAIN
    return dict(getattr(_factory(name), "train_presets", {}))


def study_facts(name: str) -> Mapping[str, Any]:
    """The paper's study facts of an app (a registered app's ``presets.STUDY``, or the
    ``study_facts`` attribute of a user's factory): reduced-data fractions and configurations,
    operating points, figure kind, the paper's own numbers."""
    if name in _PACKAGES:
        return _module(f"{_PACKAGES[name]}.presets").STUDY
    facts = getattr(_factory(name), "study_facts", None)
    if facts is None:
        raise UnknownApp(f"--app={name}: its factory has no study_facts (reduced_fractions, "
                         "reduced_configs, ...: see an app's presets.STUDY)")
    return facts


def make_app(name: str, data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
             val_fraction: float = 0.2, options: str = "", split: str = "") -> Application:
    """Build application ``name`` on ``data`` (``synthetic`` or ``dataset:path``); ``data_seed``
    fixes its synthetic data and its train / validation / test split; ``options`` (the
    ``--app_options`` text, ``NAME=VALUE,...``) override fields of the preset's settings.

    ``split`` names the cases it tests on (``ftjax.data.splits.SplitPlan``: a fold of K-fold
    cross-validation, none, or all of them for an external test set).

    ``name`` may also be ``module:function`` naming a user's own application factory, called as
    ``factory(data=, preset=, data_seed=, val_fraction=)``, with ``options=`` and ``split=``
    when given.
    """
    factory = _factory(name)
    extra = {k: v for k, v in (("options", options), ("split", split)) if v}
    try:
        app = factory(data=data, preset=preset, data_seed=data_seed, val_fraction=val_fraction,
                      **extra)
    except TypeError as e:  # e.g. --app=os:getcwd: a callable, but no application factory
        called = "data=, preset=, data_seed=, val_fraction=" + "".join(f", {k}=" for k in extra)
        raise UnknownApp(f"--app={name}: not an application factory (called as "
                         f"factory({called}): {e})") from e
    missing = [a for a in ("name", "classes", "synthetic", "cases", "training_patches",
                           "validation_candidates", "test") if not hasattr(app, a)]
    if missing:
        raise UnknownApp(f"--app={name}: the factory returned a {type(app).__name__}, not an "
                         f"application (it lacks {', '.join(missing)}; see "
                         "ftjax/apps/protocol.py)")
    return app


__all__ = ["Application", "ArrayCandidates", "ArrayPatches", "CandidateSource", "PatchSource",
           "UnknownApp", "available", "make_app", "study_facts", "train_presets"]
