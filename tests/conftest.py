"""Shared fixtures: the plugins loaded once, the app in process, and the app on a real socket.

The end-to-end modules in RUNTIME_MODULES run twice: with the shared plugins in the
emulator's process, and with each of them as its own process (the subprocess runtime).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.config import EXAMPLE_PLUGIN, RUNTIMES, RuntimeChoice, Settings
from emulator.runtime import import_sdk
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import FIXTURE_PLUGINS, KEY, live_server

import_sdk()  # on the main thread, before anything else can import the SDK


RUNTIME_MODULES = frozenset({"test_app_id", "test_model_routes", "test_daemon_behaviour"})
"""Modules whose tests run under each runtime."""

SUBPROCESS_SKIPS = {
    "test_what_the_daemon_accepts_but_the_sdk_refuses_is_named": (
        "a subprocess plugin's SDK lives in another interpreter; the emulator does not ask it"
    ),
    "test_the_daemons_timeout_item_ends_a_stream_that_runs_too_long": (
        "behind the daemon a local plugin's stream runs on after its session ends;"
        " test_subprocess_runtime.py checks the timeout item for this runtime"
    ),
    "test_a_client_that_goes_away_closes_the_plugins_stream": (
        "behind the daemon a local plugin's stream runs on after its client leaves"
    ),
}
"""Tests of RUNTIME_MODULES that check what only the in-process runtime does, and why."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "runtime" in metafunc.fixturenames and metafunc.module.__name__ in RUNTIME_MODULES:
        metafunc.parametrize(
            "runtime", RUNTIMES, indirect=True, scope="session", ids=lambda r: f"{r}-runtime"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        runtime = callspec.params.get("runtime") if callspec is not None else None
        reason = SUBPROCESS_SKIPS.get(getattr(item, "originalname", ""))
        if runtime == "subprocess" and reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def runtime(request: pytest.FixtureRequest) -> str:
    """How the shared plugins run: in process, unless a module is run under each runtime."""
    return getattr(request, "param", "inprocess")


@pytest.fixture(scope="session")
def plugins(runtime: str) -> Iterator[PluginSet]:
    loaded = PluginSet.load(
        [EXAMPLE_PLUGIN, *(FIXTURE_PLUGINS / name for name in ("twin_a", "twin_b", "raising"))],
        lambda path: RuntimeChoice(runtime),
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(key=KEY, max_execution_timeout=30)


@pytest.fixture(scope="session")
def app(settings: Settings, plugins: PluginSet) -> Any:
    return create_app(settings, plugins)


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    """The app in process, no socket; responses arrive whole, not chunk by chunk."""
    with TestClient(app, base_url="http://daemon") as c:
        yield c


@pytest.fixture(scope="session")
def live_url(app: Any) -> Iterator[str]:
    """The same app served by uvicorn on a free loopback port, for the whole session."""
    with live_server(app) as url:
        yield url


@pytest.fixture
def live_client(live_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=30) as c:
        yield c


@pytest.fixture(params=["in_process", "loopback"])
def any_client(request: pytest.FixtureRequest) -> httpx.Client:
    """Each test that takes it runs once in process and once over a real socket."""
    name = "client" if request.param == "in_process" else "live_client"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
