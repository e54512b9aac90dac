"""Settings, with the daemon's environment names: flags win over env, env over defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIFY_DEFAULT_KEY = "plugin-api-key"
"""Dify's own default PLUGIN_DAEMON_KEY, so an unconfigured Dify connects."""

EXAMPLE_PLUGIN = Path(__file__).parent / "bundled" / "echo"

KEEP_ALIVE_SECONDS = 24 * 60 * 60
"""How long uvicorn keeps an idle connection open. The daemon's net/http server sets neither
IdleTimeout nor ReadTimeout, so it never closes one. uvicorn's default of 5 s equals httpx's
own keep-alive expiry, and a pooled client (Dify's) that reuses a connection just as the server
closes it gets a ReadError."""


RUNTIMES = ("inprocess", "subprocess")
"""How a plugin runs: inside the emulator's process, or as its own process like the daemon's."""

STDIO_MAX_BUFFER_SIZE = 5 * 1024 * 1024
"""The daemon's default for the longest stdout line it reads from a plugin: 5 MiB."""

RUNTIME_SEPARATOR = "::"
"""Splits a plugin entry into its path and runtime: `PATH::subprocess[=PYTHON]`."""


@dataclass(frozen=True)
class RuntimeChoice:
    """How one plugin runs, and for a subprocess, under which Python."""

    runtime: str = "inprocess"
    python: Path | None = None
    """A python executable or a virtual environment; None: the emulator's own interpreter."""
    max_line_bytes: int = STDIO_MAX_BUFFER_SIZE
    """The longest stdout line (one frame) the daemon reads from the plugin's process."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5002
    key: str = DIFY_DEFAULT_KEY
    strict: bool = False
    plugins: tuple[Path, ...] = field(default_factory=lambda: (EXAMPLE_PLUGIN,))
    max_execution_timeout: float = 600.0
    """PLUGIN_MAX_EXECUTION_TIMEOUT: seconds before a stream ends with `killed by timeout`."""
    journal_cap: int = 1000
    """How many dispatches the journal keeps; older ones are dropped and counted."""
    runtime: str = "inprocess"
    """The runtime of every plugin whose entry names none."""
    python: Path | None = None
    """The Python of every subprocess plugin whose entry names none."""
    plugin_runtimes: Mapping[Path, RuntimeChoice] = field(default_factory=dict)
    """Runtimes chosen per plugin, from `PATH::RUNTIME[=PYTHON]` entries."""
    stdio_max_buffer_size: int = STDIO_MAX_BUFFER_SIZE
    """PLUGIN_RUNTIME_MAX_BUFFER_SIZE (or the older PLUGIN_STDIO_MAX_BUFFER_SIZE): the longest
    stdout line, in bytes, the daemon reads from a plugin; a longer frame ends the plugin's
    process, whichever runtime serves it here."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port {self.port} is not between 1 and 65535")
        if self.max_execution_timeout <= 0:
            raise SettingsError(
                f"PLUGIN_MAX_EXECUTION_TIMEOUT must be positive, not {self.max_execution_timeout}"
            )
        if self.stdio_max_buffer_size < 1:
            raise SettingsError(
                f"PLUGIN_RUNTIME_MAX_BUFFER_SIZE must be positive, not {self.stdio_max_buffer_size}"
            )
        if self.journal_cap < 1:
            raise SettingsError(f"the journal cap must be at least 1, not {self.journal_cap}")
        if self.runtime not in RUNTIMES:
            raise SettingsError(f"runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")

    def runtime_for(self, plugin: Path) -> RuntimeChoice:
        """How ``plugin`` runs: its own entry's choice, or else the default for all."""
        choice = self.plugin_runtimes.get(plugin) or RuntimeChoice(self.runtime, self.python)
        python = choice.python
        if choice.runtime == "subprocess" and python is None:
            python = self.python
        return RuntimeChoice(choice.runtime, python, self.stdio_max_buffer_size)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Defaults, overridden by the env names, overridden by flags that are set."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (field_name, parse, kind) in _ENV.items():
            if name in env:
                value = _parsed(name, env[name], parse, kind)
                if value not in _DEFERRING.get(name, ()):
                    values[field_name] = value
        values.update({name: value for name, value in flags.items() if value is not None})
        if "plugins" in values:
            plugins, runtimes = plugin_entries(values["plugins"])
            values["plugins"] = plugins or (EXAMPLE_PLUGIN,)
            values["plugin_runtimes"] = runtimes
        return cls(**values)


class SettingsError(ValueError):
    """A setting the emulator cannot run with; the message says which and why."""


def plugin_directories(paths: Iterable[Path | str]) -> tuple[Path, ...]:
    """Each path that holds a manifest.yaml is a plugin; any other folder holds plugins.

    A folder of plugins stands for its subfolders, in name order (hidden ones and
    ``__pycache__`` left out), so a volume at /plugins serves every plugin mounted in it.
    A path that is no folder at all stays as it is, for the loader to name.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and not (path / "manifest.yaml").is_file():
            found.extend(_plugins_in(path))
        else:
            found.append(path)
    return tuple(found)


def plugin_entries(
    entries: Iterable[Path | str],
) -> tuple[tuple[Path, ...], dict[Path, RuntimeChoice]]:
    """Split `PATH[::RUNTIME[=PYTHON]]` entries into plugin paths and their chosen runtimes.

    A folder of plugins passes its choice to each plugin in it.
    """
    plugins: list[Path] = []
    runtimes: dict[Path, RuntimeChoice] = {}
    for entry in entries:
        path, choice = _runtime_entry(str(entry))
        found = plugin_directories([path])
        plugins.extend(found)
        if choice is not None:
            runtimes.update(dict.fromkeys(found, choice))
    return tuple(plugins), runtimes


def _runtime_entry(entry: str) -> tuple[Path, RuntimeChoice | None]:
    path, separator, spec = entry.rpartition(RUNTIME_SEPARATOR)
    if not (path if separator else entry):
        raise SettingsError(f"plugin {entry!r}: the plugin path is empty")
    if not separator:
        return Path(entry), None
    runtime, equals, python = spec.partition("=")
    if equals and not python:
        raise SettingsError(f"plugin {entry!r}: the Python after '=' is empty")
    if runtime not in RUNTIMES:
        raise SettingsError(
            f"plugin {entry!r}: runtime {runtime!r} is not one of {', '.join(RUNTIMES)}"
            " (write PATH::subprocess or PATH::subprocess=PYTHON)"
        )
    if python and runtime != "subprocess":
        raise SettingsError(
            f"plugin {entry!r}: only a subprocess plugin runs under a Python of its own"
        )
    return Path(path), RuntimeChoice(runtime, Path(python) if python else None)


def _plugins_in(folder: Path) -> list[Path]:
    inside = sorted(
        path
        for path in folder.iterdir()
        if (path.is_dir() or path.suffix == ".difypkg")
        and not path.name.startswith(".")
        and path.name != "__pycache__"
    )
    if not inside:
        raise SettingsError(f"{folder} is not a plugin (no manifest.yaml) and holds no plugins")
    return inside


def _path_list(text: str) -> tuple[str, ...]:
    # A doubled separator belongs to an entry's runtime (`/p::subprocess`), not to the list.
    separator = re.escape(os.pathsep)
    parts = re.split(f"(?<!{separator}){separator}(?!{separator})", text)
    return tuple(part for part in parts if part)


def _go_bool(text: str) -> bool:
    """The daemon's env booleans: Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(text)


_ENV: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "SERVER_HOST": ("host", str, "string"),
    "SERVER_PORT": ("port", int, "int"),
    "SERVER_KEY": ("key", str, "string"),
    "PLUGIN_MAX_EXECUTION_TIMEOUT": ("max_execution_timeout", float, "float"),
    "PLUGIN_RUNTIME_MAX_BUFFER_SIZE": ("stdio_max_buffer_size", int, "int"),
    # After the new name: the daemon prefers the old one once it is set to something else
    # than its default or 0 (Config.GetLocalRuntimeMaxBufferSize).
    "PLUGIN_STDIO_MAX_BUFFER_SIZE": ("stdio_max_buffer_size", int, "int"),
    # The daemon has no name for these. Its PLUGIN_INSTALLED_PATH is a folder of installed
    # packages under its storage root, and Dify's compose file sets it ("plugin"), so a
    # drop-in that read it would load the wrong thing.
    "EMULATOR_PLUGIN_DIRS": ("plugins", _path_list, "path list"),
    "EMULATOR_STRICT": ("strict", _go_bool, "bool"),
    "EMULATOR_JOURNAL_CAP": ("journal_cap", int, "int"),
    "EMULATOR_RUNTIME": ("runtime", str, "runtime"),
    "EMULATOR_PYTHON": ("python", Path, "path"),
}

_DEFERRING: dict[str, tuple[Any, ...]] = {
    "PLUGIN_STDIO_MAX_BUFFER_SIZE": (STDIO_MAX_BUFFER_SIZE, 0),
}
"""Values of an older env name that leave the newer name (or the default) in force."""


def _parsed(name: str, text: str, parse: Callable[[str], Any], kind: str) -> Any:
    try:
        return parse(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a valid {kind}") from None
