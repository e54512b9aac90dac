"""What every plugin runtime shares: who a plugin is, how it fails to load, how its output
is received, and what the daemon reads from its folder before running it (the entrypoint,
the checksum)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_logger = logging.getLogger("emulator.runtime")

EventCallback = Callable[[str], None]
"""Receives each line the plugin would print: one JSON event, as the SDK serialised it."""

# Tool caches are skipped too: they change between runs without changing the plugin.
_UNHASHED_DIRECTORIES = frozenset(
    {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)


class StreamClosed(Exception):
    """Raise from ``on_event`` when the client is gone; the plugin's stream stops."""


def log_line_too_long(label: str, cap: int, session_id: str | None = None) -> None:
    """Log what the daemon logs when a plugin prints a line it cannot read: its stdout
    scanner fails with `token too long`, which ends its reader, and with it the process."""
    where = "" if session_id is None else f" (a frame of session {session_id})"
    _logger.error(
        "plugin %s has an error on stdout: bufio.Scanner: token too long: a line%s is longer"
        " than %d bytes (PLUGIN_RUNTIME_MAX_BUFFER_SIZE); the daemon stops reading it and"
        " kills the process, so its sessions get nothing more",
        label,
        where,
        cap,
    )


class PluginLoadError(Exception):
    """A plugin directory could not be loaded; the message names the directory and cause."""


@dataclass(frozen=True)
class PluginIdentity:
    """Who a plugin is, in the daemon's terms."""

    author: str
    name: str
    version: str
    checksum: str

    @property
    def plugin_id(self) -> str:
        return f"{self.author}/{self.name}" if self.author else self.name

    @property
    def unique_identifier(self) -> str:
        return f"{self.plugin_id}:{self.version}@{self.checksum}"


def manifest_entrypoint(manifest: object) -> str:
    """The module the daemon runs with `python -m`: `meta.runner.entrypoint`, `main` if unset."""
    meta = manifest.get("meta") if isinstance(manifest, dict) else None
    runner = meta.get("runner") if isinstance(meta, dict) else None
    entrypoint = runner.get("entrypoint") if isinstance(runner, dict) else None
    return str(entrypoint or "main")


def missing_entrypoint(directory: Path, entrypoint: str) -> str | None:
    """Why `python -m <entrypoint>`, run in ``directory``, would find no module there, in
    Python's words; None if it would. Nothing is imported or run."""
    spec = _spec_under(directory, entrypoint) if all(entrypoint.split(".")) else None
    if spec is None:
        return f"No module named {entrypoint}"
    # -m runs a package's __main__ module.
    is_package = spec.submodule_search_locations is not None
    if is_package and _spec_under(directory, f"{entrypoint}.__main__") is None:
        return (
            f"No module named {entrypoint}.__main__; '{entrypoint}' is a package and"
            " cannot be directly executed"
        )
    return None


def _spec_under(directory: Path, name: str) -> importlib.machinery.ModuleSpec | None:
    # Each part in turn, as the import system walks a dotted name; a folder without
    # __init__.py is a namespace package, as for `python -m`.
    locations: list[str] = [str(directory)]
    spec = None
    parts = name.split(".")
    for index in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: index + 1]), locations)
        if spec is None:
            return None
        locations = list(spec.submodule_search_locations or [])
        if index < len(parts) - 1 and not locations:
            return None
    return spec


def directory_checksum(directory: Path) -> str:
    """Return the sha256 hex digest of a plugin's files (relative paths and contents)."""
    digest = hashlib.sha256()
    for path in _hashed_files(directory):
        content = path.read_bytes()
        relative = path.relative_to(directory).as_posix()
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def _hashed_files(directory: Path) -> list[Path]:
    files: list[Path] = []
    for root, subdirectories, names in os.walk(directory):
        subdirectories[:] = [d for d in subdirectories if d not in _UNHASHED_DIRECTORIES]
        files.extend(Path(root, name) for name in names if not name.endswith(".pyc"))
    return sorted(files, key=lambda path: path.relative_to(directory).as_posix())
