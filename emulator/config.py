"""Settings, with the daemon's environment names: flags win over env, env over defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: object) -> Settings:
        """Defaults, overridden by the daemon's env names, overridden by flags that are set."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "SERVER_HOST" in env:
            values["host"] = env["SERVER_HOST"]
        if "SERVER_PORT" in env:
            values["port"] = int(env["SERVER_PORT"])
        if "SERVER_KEY" in env:
            values["key"] = env["SERVER_KEY"]
        if "PLUGIN_MAX_EXECUTION_TIMEOUT" in env:
            values["max_execution_timeout"] = float(env["PLUGIN_MAX_EXECUTION_TIMEOUT"])
        values.update({name: value for name, value in flags.items() if value is not None})
        if "plugins" in values:
            values["plugins"] = tuple(Path(p) for p in values["plugins"]) or (EXAMPLE_PLUGIN,)  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]
