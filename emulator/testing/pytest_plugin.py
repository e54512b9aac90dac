"""pytest fixtures for the daemon emulator (registered through the `pytest11` entry point).

    daemon_emulator        in process: this process's httpx traffic for the base URL goes
                           into the emulator's app through respx, no socket (answers whole)
    daemon_emulator_live   uvicorn on a free loopback port, started once per session (and
                           per pytest-xdist worker): streams arrive chunk by chunk
    daemon_emulator_plugins  the plugin directories to serve; override it, or use the
                           `daemon_emulator_plugins` ini option or marker

Both set PLUGIN_DAEMON_URL and PLUGIN_DAEMON_KEY for the test, reset the journal and the
faults before it, and fail it if a contract warning was recorded during it (unless it is
marked `allow_contract_warnings`). Importing this module imports neither the SDK nor the
server: a test that uses no fixture here runs as if the plugin were not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from emulator.testing.harness import DaemonEmulator, EmulatorHarness

DEFAULT_URL = "http://localhost:5002"
"""Dify's default PLUGIN_DAEMON_URL: code that read it at import time is routed too."""

_EMULATOR = pytest.StashKey["DaemonEmulator"]()
_HARNESS = pytest.StashKey["EmulatorHarness"]()
_WARNINGS_HINT = " (mark the test allow_contract_warnings to allow them)"
GEVENT_PATCHED = (
    "daemon-emulator: gevent has monkey-patched this process, so the emulator's threads and"
    " sockets would not work. `import dify_plugin` does that patching, and a test module or"
    " conftest imported it before the emulator could import it unpatched. Fix: add"
    " `daemon_emulator_import_sdk = true` to your pytest ini file ([pytest] in pytest.ini, or"
    " [tool.pytest.ini_options] in pyproject.toml): the emulator then imports dify_plugin at"
    " start-up, before any test module, without the patching."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "daemon_emulator_plugins",
        "plugin directories the daemon emulator serves (default: its example plugin)",
        type="paths",
    )
    parser.addini(
        "daemon_emulator_url",
        f"base URL the in-process daemon emulator answers (default: {DEFAULT_URL})",
        default=DEFAULT_URL,
    )
    parser.addini(
        "daemon_emulator_key",
        "X-Api-Key the daemon emulator requires (default: Dify's plugin-api-key)",
        default="plugin-api-key",
    )
    parser.addini(
        "daemon_emulator_journal_cap",
        "dispatches the daemon emulator's journal keeps (default: 1000)",
        default="1000",
    )
    parser.addini(
        "daemon_emulator_import_sdk",
        "import dify_plugin at start-up without gevent's patching, before test modules do",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "daemon_emulator_plugins(*directories): plugin directories the daemon emulator "
        "serves in this test (relative ones from the rootdir)",
    )
    config.addinivalue_line(
        "markers",
        "allow_contract_warnings: do not fail the test when the daemon emulator records a "
        "contract warning",
    )
    if config.getini("daemon_emulator_import_sdk"):
        from emulator.runtime import import_sdk

        import_sdk()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    emulator = item.stash.get(_EMULATOR, None)
    if emulator is None:
        return outcome
    from emulator.testing.assertions import assert_handlers_answered, assert_no_contract_warnings

    assert_handlers_answered(emulator)
    if item.get_closest_marker("allow_contract_warnings") is None:
        assert_no_contract_warnings(emulator, _WARNINGS_HINT)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    outcome = yield
    harness = item.config.stash.get(_HARNESS, None)
    # Patching httpx's transports is most of the in-process fixture's cost: the patch stays
    # between tests that use the fixture, and goes before any test that does not.
    if harness is not None and "daemon_emulator" not in getattr(nextitem, "fixturenames", ()):
        harness.stop_interceptions()
    return outcome


@pytest.fixture
def daemon_emulator_plugins(pytestconfig: pytest.Config) -> list[Path]:
    """The plugin directories to serve: the ini option's, else the bundled example plugin."""
    configured: list[Path] = pytestconfig.getini("daemon_emulator_plugins")
    if configured:
        return configured
    from emulator.config import EXAMPLE_PLUGIN

    return [EXAMPLE_PLUGIN]


@pytest.fixture(scope="session")
def _daemon_emulator_harness(pytestconfig: pytest.Config) -> Iterator[EmulatorHarness]:
    _refuse_a_gevent_patched_process()
    from emulator.testing.harness import EmulatorHarness

    harness = EmulatorHarness(
        key=pytestconfig.getini("daemon_emulator_key"),
        journal_cap=int(pytestconfig.getini("daemon_emulator_journal_cap")),
    )
    pytestconfig.stash[_HARNESS] = harness
    yield harness
    del pytestconfig.stash[_HARNESS]
    harness.close()


@pytest.fixture
def daemon_emulator(
    request: pytest.FixtureRequest,
    _daemon_emulator_harness: EmulatorHarness,
    daemon_emulator_plugins: list[Path],
) -> Iterator[DaemonEmulator]:
    """The emulator in process: httpx requests to its URL never touch a socket."""
    _refuse_a_gevent_patched_process()
    url = request.config.getini("daemon_emulator_url").rstrip("/")
    _daemon_emulator_harness.interception(url).start()
    yield from _serving(request, _daemon_emulator_harness, url, daemon_emulator_plugins)


@pytest.fixture
def daemon_emulator_live(
    request: pytest.FixtureRequest,
    _daemon_emulator_harness: EmulatorHarness,
    daemon_emulator_plugins: list[Path],
) -> Iterator[DaemonEmulator]:
    """The emulator on a real loopback socket, for streams observed chunk by chunk."""
    _refuse_a_gevent_patched_process()
    url = _daemon_emulator_harness.live_url
    yield from _serving(request, _daemon_emulator_harness, url, daemon_emulator_plugins)


def _serving(
    request: pytest.FixtureRequest,
    harness: EmulatorHarness,
    url: str,
    configured_plugins: list[Path],
) -> Iterator[DaemonEmulator]:
    from emulator.testing.harness import plugin_directories

    marker = request.node.get_closest_marker("daemon_emulator_plugins")
    plugins = configured_plugins
    if marker is not None:
        plugins = plugin_directories(marker.args, request.config.rootpath)
    emulator = harness.prepare(url, plugins)
    request.node.stash[_EMULATOR] = emulator
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLUGIN_DAEMON_URL", url)
        patch.setenv("PLUGIN_DAEMON_KEY", emulator.key)
        yield emulator


def _refuse_a_gevent_patched_process() -> None:
    """Fail the test at once, naming the fix, where gevent has patched the process (without
    importing gevent where nothing else did)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        pytest.fail(GEVENT_PATCHED, pytrace=False)
