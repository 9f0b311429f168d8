"""Test set-up: 8 simulated CPU devices for the multi-device paths, set before jax starts."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402 (after the environment above)


@pytest.fixture(scope="session", autouse=True)
def _cache_outside_home(tmp_path_factory):
    """Whatever a test caches (data sets, trunk features) goes to a temporary folder unless
    ``FTJAX_CACHE`` names one (CI's)."""
    if os.environ.get("FTJAX_CACHE"):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTJAX_CACHE", str(tmp_path_factory.mktemp("ftjax_session_cache")))
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh data-set cache (``FTJAX_CACHE``) per test module."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("ftjax_cache")
        mp.setenv("FTJAX_CACHE", str(root))
        yield root
