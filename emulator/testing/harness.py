"""The emulator as the pytest fixtures use it: one app per test session, reset for each test.

`EmulatorHarness` holds what is costly to build (the app, the loaded plugins, the in-process
event loop, the live server) and builds each piece the first time a fixture asks for it.
`DaemonEmulator` is what a test gets: the base URL and key to reach the emulator, its journal
and its faults.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emulator.backwards import Backwards
from emulator.config import DIFY_DEFAULT_KEY, RuntimeChoice, Settings, plugin_entries
from emulator.faults import Fault, FaultRule, Faults
from emulator.journal import DEFAULT_CAP, Dispatch, Journal
from emulator.runtime import import_sdk
from emulator.runtime.registry import IN_PROCESS, PluginRuntime, PluginSet
from emulator.server.app import create_app
from emulator.testing._inprocess import AppLoop, Interception
from emulator.testing._live import LiveServer

logger = logging.getLogger("emulator.testing")


@dataclass
class DaemonEmulator:
    """The emulator one test talks to: where it is, what it recorded, what it injects."""

    url: str
    """The base URL, as PLUGIN_DAEMON_URL holds it."""
    key: str
    """The X-Api-Key it requires, as PLUGIN_DAEMON_KEY holds it."""
    journal: Journal
    faults: Faults
    backwards: Backwards
    """Answers the plugins' calls back into Dify: register handlers, seed storage."""

    def dispatch_url(self, route: str, tenant_id: str) -> str:
        """The URL Dify posts a dispatch to, e.g. route `llm/invoke`."""
        return f"{self.url}/plugin/{tenant_id}/dispatch/{route}"

    def inject(
        self,
        fault: Fault,
        *,
        route: str | None = None,
        plugin_id: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Inject `fault` into the dispatches that match (None: any), `times` times or always."""
        return self.faults.add(fault, route=route, plugin_id=plugin_id, times=times)

    def dispatches(self, route: str | None = None, plugin_id: str | None = None) -> list[Dispatch]:
        """The dispatches recorded since the test started, oldest first."""
        return self.journal.dispatches(route=route, plugin_id=plugin_id)

    def reset(self) -> None:
        """Forget the journal, remove every fault, handler and stored value."""
        self.journal.clear()
        self.faults.clear()
        self.backwards.clear()


class EmulatorHarness:
    """One emulator app for a test session, served in process, live, or both."""

    def __init__(self, key: str = DIFY_DEFAULT_KEY, journal_cap: int = DEFAULT_CAP) -> None:
        import_sdk()
        self.key = key
        self.journal = Journal(journal_cap)
        self.faults = Faults()
        self.backwards = Backwards()
        self.app = create_app(
            Settings(key=key), PluginSet(), self.journal, self.faults, self.backwards
        )
        self._plugins: dict[tuple[Path, RuntimeChoice], PluginSet] = {}
        self._serving: tuple[Path | str, ...] = ()
        self._interceptions: dict[str, Interception] = {}
        self._app_loop: AppLoop | None = None
        self._live: LiveServer | None = None

    def prepare(self, url: str, plugins: Sequence[Path | str]) -> DaemonEmulator:
        """Reset for a new test that uses these plugins (each loaded once per session).

        Each entry is what `serve --plugin` takes: a plugin folder, a .difypkg or a folder of
        them, with an optional `::inprocess`, `::subprocess` or `::subprocess=PYTHON`.
        """
        wanted = tuple(plugins)
        if wanted != self._serving:
            paths, runtimes = plugin_entries(wanted)
            chosen = [(path, runtimes.get(path, IN_PROCESS)) for path in paths]
            self.app.state.plugins = PluginSet(self._plugin(*each) for each in chosen)
            self._serving = wanted
        emulator = DaemonEmulator(url, self.key, self.journal, self.faults, self.backwards)
        emulator.reset()
        return emulator

    def interception(self, base_url: str) -> Interception:
        """respx routing of httpx traffic for `base_url` into the app (start and stop it)."""
        if self._app_loop is None:
            self._app_loop = AppLoop(self.app)
        if base_url not in self._interceptions:
            self._interceptions[base_url] = Interception(base_url, self._app_loop)
        return self._interceptions[base_url]

    @property
    def live_url(self) -> str:
        """The base URL of the app served by uvicorn, started on first use."""
        if self._live is None:
            self._live = LiveServer(self.app)
        return self._live.url

    def stop_interceptions(self) -> None:
        """Give httpx its own transports back."""
        for interception in self._interceptions.values():
            interception.stop()

    def close(self) -> None:
        self.stop_interceptions()
        for loaded in self._plugins.values():
            loaded.close()
        if self._live is not None:
            self._live.close()
        if self._app_loop is not None:
            self._app_loop.close()

    def _plugin(self, path: Path, choice: RuntimeChoice) -> PluginRuntime:
        key = (path.resolve(), choice)
        if key not in self._plugins:
            self._plugins[key] = PluginSet.load([key[0]], lambda _: choice)
        (plugin,) = self._plugins[key]
        return plugin


def plugin_directories(values: Iterable[str | Path], root: Path) -> list[Path]:
    """Plugin entries as given to a marker or ini option: relative paths under `root` (a
    `::subprocess=PYTHON` suffix rides along; its PYTHON is taken as written)."""
    return [Path(value) if Path(value).is_absolute() else root / value for value in values]
