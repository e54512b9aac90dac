"""The loaded plugins, by plugin id: what X-Plugin-ID selects. Every tenant sees every one.

A plugin runs in the emulator's process (`InProcessPlugin`) or as its own process
(`SubprocessPlugin`); the server sees either as a `PluginRuntime`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from emulator.config import RuntimeChoice
from emulator.runtime import packages
from emulator.runtime.declaration import DeclarationError, PluginPackage, read_package
from emulator.runtime.inprocess import InProcessPlugin
from emulator.runtime.plugin import EventCallback, PluginIdentity, PluginLoadError
from emulator.runtime.sdk import ProviderSummary
from emulator.runtime.subprocess import SubprocessPlugin

logger = logging.getLogger("emulator.runtime")

IN_PROCESS = RuntimeChoice()

RuntimeChooser = Callable[[Path], RuntimeChoice]
"""Says how the plugin at a path runs (see `Settings.runtime_for`)."""


class RequestHandle(Protocol):
    """A request a plugin is running."""

    session_id: str

    @property
    def done(self) -> bool: ...

    def join(self, timeout: float | None = None) -> bool: ...


class PluginRuntime(Protocol):
    """A loaded plugin, whichever way it runs."""

    identity: PluginIdentity
    directory: Path
    providers: list[ProviderSummary]
    start_may_wait: bool
    """True if `start` can block (a process starting up): call it off the event loop."""

    def request_rejection(self, request_line: str) -> str | None:
        """Why the plugin's SDK would refuse this request line, or None."""
        ...

    def start(self, request_line: str, on_event: EventCallback) -> RequestHandle:
        """Run one daemon request line; each line the plugin prints for it goes to on_event."""
        ...

    def send(self, line: str) -> None:
        """Write one daemon->plugin line for a running session (not a new request)."""
        ...

    def close(self) -> None:
        """Stop the plugin."""
        ...


class PluginSet:
    def __init__(self, plugins: Iterable[PluginRuntime] = ()) -> None:
        self._plugins: dict[str, PluginRuntime] = {}
        self._unpacked: list[tempfile.TemporaryDirectory[str]] = []
        self.active_requests = 0
        for plugin in plugins:
            self.add(plugin)

    @classmethod
    def load(cls, paths: Iterable[Path], choose: RuntimeChooser | None = None) -> PluginSet:
        """Loads each plugin folder or .difypkg in turn, logging one line per plugin.

        ``choose`` says how each runs; by default every one runs in process. If one
        fails, those already loaded are closed and the error is raised.
        """
        plugins = cls()
        try:
            for path in map(Path, paths):
                choice = choose(path) if choose is not None else IN_PROCESS
                plugins.add(plugins._load_logged(path, choice))
        except BaseException:
            plugins.close()
            raise
        return plugins

    def add(self, plugin: PluginRuntime) -> None:
        plugin_id = plugin.identity.plugin_id
        if plugin_id in self._plugins:
            first = self._plugins[plugin_id].directory
            raise ValueError(
                f"two plugins share the id {plugin_id!r}: {first} and {plugin.directory}"
            )
        self._plugins[plugin_id] = plugin

    def get(self, plugin_id: str) -> PluginRuntime | None:
        return self._plugins.get(plugin_id)

    def close(self) -> None:
        """Stop every plugin and remove the folders packages were unpacked to."""
        for plugin in self._plugins.values():
            plugin.close()
        for folder in self._unpacked:
            packages.remove(folder)
        self._unpacked.clear()

    def __iter__(self) -> Iterator[PluginRuntime]:
        return iter(self._plugins.values())

    def __len__(self) -> int:
        return len(self._plugins)

    def _load_logged(self, path: Path, choice: RuntimeChoice) -> PluginRuntime:
        if not packages.is_package(path):
            plugin = load_plugin(path, choice)
            origin = str(path)
        else:
            folder = packages.unpack(path)
            self._unpacked.append(folder)
            directory = Path(folder.name)
            origin = f"{path} (unpacked to {directory})"
            try:
                plugin = load_plugin(directory, choice)
            except PluginLoadError as error:
                raise PluginLoadError(_in_package(str(error), path, directory)) from error
        package = _declaration(plugin, origin)
        logger.info(
            "loaded %s from %s%s: %s",
            plugin.identity.unique_identifier,
            origin,
            _runtime_note(plugin),
            _describe(plugin.providers, package),
        )
        return plugin


def load_plugin(directory: Path, choice: RuntimeChoice = IN_PROCESS) -> PluginRuntime:
    """Load the plugin folder ``directory`` the chosen way; raise PluginLoadError if it fails."""
    if choice.runtime == "subprocess":
        return SubprocessPlugin.load(directory, choice.python, max_line_bytes=choice.max_line_bytes)
    return InProcessPlugin.load(directory, max_line_bytes=choice.max_line_bytes)


def _in_package(message: str, package: Path, directory: Path) -> str:
    """A load error's message naming the package the user gave, not the private folder it
    was unpacked to; the folder follows in brackets, for paths inside it."""
    named = message
    # The longer first: a resolved path can end with the path it resolves (/private/tmp/…).
    for folder in sorted({str(directory.resolve()), str(directory)}, key=len, reverse=True):
        named = named.replace(folder, str(package))
    return f"{named}\n(the package was unpacked to {directory})"


def _runtime_note(plugin: PluginRuntime) -> str:
    if isinstance(plugin, SubprocessPlugin):
        return f" in a subprocess (pid {plugin.pid}, {plugin.python})"
    return ""


_FAMILIES = (
    # In the daemon decoder's order: declaration key, what to call it, the member listing
    # its items. Models come from the runtime's own summary; endpoints have no provider name.
    ("tool", "tool provider", "tools"),
    ("endpoint", "", "endpoints"),
    ("model", "", ""),
    ("agent_strategy", "agent strategy provider", "strategies"),
    ("datasource", "datasource provider", "datasources"),
    ("trigger", "trigger provider", "events"),
)


def _declaration(plugin: PluginRuntime, origin: str) -> PluginPackage | None:
    """The declaration the daemon would store, or None (logged) where its decoder fails.

    The daemon decodes a package when it is uploaded and refuses to install one it cannot
    decode (400, `failed to decode package`; an icon missing from _assets fails as it saves
    the package), so such a plugin never runs behind it. Here it still serves, so the
    plugin's own routes can be tried; the management routes that list plugins answer -500.
    """
    try:
        return read_package(plugin.directory)
    except DeclarationError as error:
        logger.warning(
            "plugin %s from %s: the daemon would refuse to install it, as its package decoder"
            " fails: %s. It is served here all the same, but the management routes that list"
            " plugins answer -500 while it is loaded",
            plugin.identity.unique_identifier,
            origin,
            str(error).replace("\n", "; "),
        )
        return None


def _describe(providers: list[ProviderSummary], package: PluginPackage | None) -> str:
    """What the plugin declares, per family: each provider and its items."""
    parts: list[str] = []
    for key, title, items in _FAMILIES:
        if key == "model":
            parts.extend(_models(provider) for provider in providers)
            continue
        declared = None if package is None else package.declaration[key]
        if declared is None:
            continue
        if key == "endpoint":
            endpoints = [f"{e['method']} {e['path']}" for e in declared["endpoints"] or []]
            parts.append(f"endpoints ({', '.join(endpoints)})")
            continue
        names = [item["identity"]["name"] for item in declared[items] or []]
        parts.append(f"{title} {declared['identity']['name']} ({items}: {', '.join(names)})")
    return "; ".join(parts)


def _models(provider: ProviderSummary) -> str:
    models = ", ".join(f"{t}: {', '.join(m)}" for t, m in provider.models.items())
    return f"{provider.name} ({models})"
