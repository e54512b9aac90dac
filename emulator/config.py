"""Settings, with the daemon's environment names: flags win over env, env over defaults."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIFY_DEFAULT_KEY = "plugin-api-key"
"""Dify's own default PLUGIN_DAEMON_KEY, so an unconfigured Dify connects."""

EXAMPLE_PLUGIN = Path(__file__).parent / "bundled" / "echo"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5002
    key: str = DIFY_DEFAULT_KEY
    strict: bool = False
    plugins: tuple[Path, ...] = field(default_factory=lambda: (EXAMPLE_PLUGIN,))
    max_execution_timeout: float = 600.0
    """PLUGIN_MAX_EXECUTION_TIMEOUT: seconds before a stream ends with `killed by timeout`."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port {self.port} is not between 1 and 65535")
        if self.max_execution_timeout <= 0:
            raise SettingsError(
                f"PLUGIN_MAX_EXECUTION_TIMEOUT must be positive, not {self.max_execution_timeout}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Defaults, overridden by the daemon's env names, overridden by flags that are set."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (field_name, parse) in _ENV.items():
            if name in env:
                values[field_name] = _parsed(name, env[name], parse)
        values.update({name: value for name, value in flags.items() if value is not None})
        if "plugins" in values:
            values["plugins"] = tuple(Path(p) for p in values["plugins"]) or (EXAMPLE_PLUGIN,)
        return cls(**values)


class SettingsError(ValueError):
    """A setting the emulator cannot run with; the message says which and why."""


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SERVER_HOST": ("host", str),
    "SERVER_PORT": ("port", int),
    "SERVER_KEY": ("key", str),
    "PLUGIN_MAX_EXECUTION_TIMEOUT": ("max_execution_timeout", float),
}


def _parsed(name: str, text: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a valid {parse.__name__}") from None
