"""Shared fixtures: the plugins loaded once, the app in process, and the app on a real socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.runtime import import_sdk
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import FIXTURE_PLUGINS, KEY

import_sdk()  # on the main thread, before anything else can import the SDK


@pytest.fixture(scope="session")
def plugins() -> PluginSet:
    return PluginSet.load(
        [EXAMPLE_PLUGIN, *(FIXTURE_PLUGINS / name for name in ("twin_a", "twin_b", "raising"))]
    )


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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def live_client(live_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=30) as c:
        yield c


@pytest.fixture(params=["in_process", "loopback"])
def any_client(request: pytest.FixtureRequest) -> httpx.Client:
    """Each test that takes it runs once in process and once over a real socket."""
    name = "client" if request.param == "in_process" else "live_client"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
