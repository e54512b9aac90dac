"""The reliability suite's servers, and the tally of what it sent, printed at the end.

Two servers, both on 127.0.0.1 only:

- `served`: `python -m emulator serve` in a subprocess, as users run it, with the example,
  faulty and raising plugins. Load, long streams and slow or vanishing clients go here; its
  threads and memory are read from /proc, its journal over HTTP.
- `impatient`: an app in this process with a short PLUGIN_MAX_EXECUTION_TIMEOUT, served by
  uvicorn on a loopback port, for plugin faults: its threads and journal are read directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.journal import Journal
from emulator.runtime import InProcessPlugin
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from emulator.testing._live import LiveServer
from helpers import KEY
from support import (
    FAULTY,
    IMPATIENT_TIMEOUT,
    RAISING,
    TALLY,
    InProcessEmulator,
    ServedEmulator,
    Tally,
    free_port,
)

SERVED_TIMEOUT = 300
SERVED_JOURNAL_CAP = 12_000


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY:
        terminalreporter.write_sep("-", "reliability suite")
        terminalreporter.write_line(f"reliability: {TALLY}")


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    directory = tmp_path_factory.mktemp("served")
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SERVER_", "EMULATOR_", "PLUGIN_"))
    }
    env["PLUGIN_MAX_EXECUTION_TIMEOUT"] = str(SERVED_TIMEOUT)
    command = [sys.executable, "-m", "emulator", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--key", KEY, "--journal-cap", str(SERVED_JOURNAL_CAP)]
    for plugin in (EXAMPLE_PLUGIN, FAULTY, RAISING):
        command += ["--plugin", str(plugin)]
    log = directory / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=output, stderr=output)
    emulator = ServedEmulator(f"http://127.0.0.1:{port}", process, log)
    _wait_until_serving(emulator)
    yield emulator
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _wait_until_serving(emulator: ServedEmulator) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            emulator.health()
            return
        except httpx.TransportError:
            if emulator.process.poll() is not None or time.monotonic() > deadline:
                log = emulator.log.read_text()
                raise AssertionError(f"the emulator did not start:\n{log}") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def faulty_plugin() -> InProcessPlugin:
    (plugin,) = PluginSet.load([FAULTY])
    return plugin


@pytest.fixture(scope="session")
def impatient(plugins: PluginSet, faulty_plugin: InProcessPlugin) -> Iterator[InProcessEmulator]:
    """The shared plugins and the faulty one, timing out streams after half a second."""
    served_plugins = PluginSet([*plugins, faulty_plugin])
    journal = Journal()
    settings = Settings(key=KEY, max_execution_timeout=IMPATIENT_TIMEOUT)
    app = create_app(settings, served_plugins, journal)
    server = LiveServer(app)
    yield InProcessEmulator(server.url, app, journal, served_plugins)
    server.close()
