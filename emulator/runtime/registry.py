"""The loaded plugins, by plugin id: what X-Plugin-ID selects. Every tenant sees every one."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from emulator.runtime.inprocess import InProcessPlugin

logger = logging.getLogger("emulator.runtime")


class PluginSet:
    def __init__(self, plugins: Iterable[InProcessPlugin] = ()) -> None:
        self._plugins: dict[str, InProcessPlugin] = {}
        self.active_requests = 0
        for plugin in plugins:
            self.add(plugin)

    @classmethod
    def load(cls, directories: Iterable[Path]) -> PluginSet:
        """Loads each directory in turn, logging one line per plugin."""
        return cls(_load_logged(Path(directory)) for directory in directories)

    def add(self, plugin: InProcessPlugin) -> None:
        plugin_id = plugin.identity.plugin_id
        if plugin_id in self._plugins:
            raise ValueError(f"two plugins share the id {plugin_id!r}")
        self._plugins[plugin_id] = plugin

    def get(self, plugin_id: str) -> InProcessPlugin | None:
        return self._plugins.get(plugin_id)

    def __iter__(self) -> Iterator[InProcessPlugin]:
        return iter(self._plugins.values())

    def __len__(self) -> int:
        return len(self._plugins)


def _load_logged(directory: Path) -> InProcessPlugin:
    plugin = InProcessPlugin.load(directory)
    providers = "; ".join(
        f"{p.name} ({', '.join(f'{t}: {", ".join(m)}' for t, m in p.models.items())})"
        for p in plugin.providers
    )
    logger.info("loaded %s from %s: %s", plugin.identity.unique_identifier, directory, providers)
    return plugin
