"""Run each SDK plugin as its own Python process, as the daemon's local runtime does.

The daemon (internal/core/local_runtime) starts ``<python> -m <entrypoint>`` in the
plugin's folder with its own environment plus ``INSTALL_METHOD=local``, writes each
request as one JSON line to the process's stdin, and counts the process ready at its
first heartbeat (reading it: emulator.runtime._stdio).

What happens when the process dies, as the daemon does it:

- Sessions in flight get nothing more. Nothing closes their listeners, so their
  HTTP streams end with the daemon's ``killed by timeout`` item once
  ``PLUGIN_MAX_EXECUTION_TIMEOUT`` has passed.
- The next request starts the process again. The daemon's scheduler restarts a dead
  instance on its own, within 5 s, and a request waits up to 6 s for a ready one,
  retrying every 300 ms (io_tunnel/generic.go). Here the request that finds the
  process dead starts it and waits up to the same 6 s; past that it fails with
  :class:`PluginUnavailableError`, carrying the daemon's error text.
- A client that goes away does not stop the plugin: the daemon has no message for
  that. The plugin's further frames for that session are dropped.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from emulator.config import STDIO_MAX_BUFFER_SIZE
from emulator.runtime._stdio import PluginProcess, Session, json_object
from emulator.runtime.plugin import (
    EventCallback,
    PluginIdentity,
    PluginLoadError,
    directory_checksum,
    manifest_entrypoint,
)
from emulator.runtime.sdk import INVOCATION_TIMEOUT, ProviderSummary

START_TIMEOUT = 120.0
"""Seconds a new process has to send its first heartbeat: the daemon's MAX_HEARTBEAT_INTERVAL."""

WRITE_BUDGET = 6.0
"""Seconds a request waits for a ready process: the daemon's writeRetryBudget."""

NO_PROPER_INSTANCE = "no proper instance\nfailed to write request"
"""The daemon's error when no instance is ready within the write budget (errors.Join text)."""

_logger = logging.getLogger("emulator.runtime")
_stdio_line = TypeAdapter(dict[str, Any])
"""How the SDK's StdioRequestReader parses each stdin line."""


class PluginUnavailableError(Exception):
    """No process of the plugin could take the request; the message is the daemon's text."""


@dataclass(frozen=True)
class _Launch:
    """How to start the plugin's process."""

    python: str
    entrypoint: str
    directory: Path
    label: str
    max_line_bytes: int


class SubprocessRequest:
    """One request running in the plugin's process."""

    def __init__(self, session_id: str, finished: threading.Event) -> None:
        self.session_id = session_id
        self._finished = finished

    @property
    def done(self) -> bool:
        """True once the session ended, its client left, or its process died."""
        return self._finished.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the request to finish; return whether it did."""
        return self._finished.wait(timeout)


class SubprocessPlugin:
    """An SDK plugin in a process of its own; start requests on it from any thread."""

    start_may_wait = True
    """A request that finds the process dead starts it and waits for it to be ready."""

    def __init__(
        self,
        identity: PluginIdentity,
        directory: Path,
        providers: list[ProviderSummary],
        launch: _Launch,
        write_budget: float = WRITE_BUDGET,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.identity = identity
        self.directory = directory
        self.providers = providers
        self.python = launch.python
        self._launch = launch
        self._write_budget = write_budget
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._process: PluginProcess | None = None
        self._closed = False

    @classmethod
    def load(
        cls,
        directory: Path,
        python: Path | str | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        write_budget: float = WRITE_BUDGET,
        max_line_bytes: int = STDIO_MAX_BUFFER_SIZE,
    ) -> SubprocessPlugin:
        """Start the plugin in ``directory`` under ``python`` (default: this interpreter)
        and wait for its first heartbeat; raise PluginLoadError if it dies or stays silent.

        A stdout line of ``max_line_bytes`` or more ends the process, as in the daemon.
        """
        directory = Path(directory).resolve()
        manifest = _read_manifest(directory)
        _refuse_pid_one(directory)
        identity = PluginIdentity(
            author=str(manifest.get("author") or ""),
            name=str(manifest.get("name") or ""),
            version=str(manifest.get("version") or ""),
            checksum=directory_checksum(directory),
        )
        launch = _Launch(
            python=_interpreter(python),
            entrypoint=manifest_entrypoint(manifest),
            directory=directory,
            label=identity.plugin_id,
            max_line_bytes=max_line_bytes,
        )
        providers = _providers(directory, manifest)
        plugin = cls(identity, directory, providers, launch, write_budget, start_timeout)
        plugin._start_first_process()
        return plugin

    @property
    def pid(self) -> int | None:
        """The process id of the plugin's current process, or None if it has none."""
        process = self._process
        return None if process is None or process.exited.is_set() else process.pid

    def request_rejection(self, request_line: str) -> str | None:
        """None: the plugin's SDK lives in another interpreter, so its request classes are
        not asked. Raise ValueError for a line its stdio reader could not parse (pydantic
        refuses JSON nested about 200 levels deep), as the in-process runtime does."""
        _stdio_line.validate_json(request_line)
        return None

    def start(self, request_line: str, on_event: EventCallback) -> SubprocessRequest:
        """Write one daemon request line to the plugin; its frames go to ``on_event``.

        ``on_event`` is called from the process's reader thread with each line the
        plugin prints for this session, in order. If it raises (``StreamClosed`` when
        the client is gone), nothing more is delivered; the plugin runs on, as behind
        the daemon. A dead process is started again first; raise
        PluginUnavailableError if none is ready within the daemon's write budget.
        """
        session = Session(_session_id(request_line), on_event)
        deadline = time.monotonic() + self._write_budget
        while True:
            process = self._ready_process(deadline)
            if process is None:
                raise PluginUnavailableError(NO_PROPER_INSTANCE)
            process.open(session)
            try:
                process.write(request_line)
            except OSError:
                process.forget(session)
                process.stop()
                continue
            return SubprocessRequest(session.session_id, session.finished)

    def send(self, line: str) -> None:
        """Write one daemon->plugin line for a running session: a `backwards_response`.

        A line for a session that is not running, or whose process died, is dropped.
        Raise ValueError for a line that is not a `backwards_response` envelope.
        """
        message = json_object(line)
        if message is None or message.get("event") != "backwards_response":
            raise ValueError(f"not a backwards_response line: {line[:200]!r}")
        process = self._process
        session_id = message.get("session_id")
        if process is None or not process.running(session_id):
            _logger.info("plugin %s: dropped a line for no running session", self.directory)
            return
        try:
            process.write(line)
        except OSError as error:
            _logger.warning("plugin %s: its process is gone: %s", self.directory, error)

    def close(self) -> None:
        """Stop the plugin's process; it is not started again."""
        with self._lock:
            self._closed = True
            process = self._process
        if process is not None:
            process.stop()

    def _start_first_process(self) -> None:
        process = self._spawn()
        if not _wait_until_ready(process, time.monotonic() + self._start_timeout):
            exited = process.exited.is_set()
            process.stop()
            raise PluginLoadError(self._load_failure(process, exited))
        with self._lock:
            self._process = process

    def _ready_process(self, deadline: float) -> PluginProcess | None:
        with self._lock:
            if self._closed:
                return None
            process = self._process
            if process is None or process.exited.is_set():
                process = self._restart()
                if process is None:
                    return None
        return process if _wait_until_ready(process, deadline) else None

    def _restart(self) -> PluginProcess | None:
        _logger.warning("plugin %s: starting its process again", self.identity.plugin_id)
        try:
            process = self._spawn()
        except PluginLoadError as error:
            _logger.error("%s", error)
            return None
        self._process = process
        _stop_if_silent(process, self._start_timeout)
        return process

    def _spawn(self) -> PluginProcess:
        launch = self._launch
        try:
            popen = subprocess.Popen(
                [launch.python, "-m", launch.entrypoint],
                cwd=launch.directory,
                env=plugin_environment(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise PluginLoadError(
                f"cannot load plugin from {launch.directory}: cannot run {launch.python}: {error}"
            ) from error
        return PluginProcess(popen, launch.label, launch.max_line_bytes)

    def _load_failure(self, process: PluginProcess, exited: bool) -> str:
        launch = self._launch
        if not exited:
            cause = f"no heartbeat within {self._start_timeout:g} s, so it was stopped"
        else:
            cause = f"its process exited with code {process.returncode} before its first heartbeat"
        command = f"{launch.python} -m {launch.entrypoint}"
        tail = process.stderr_tail()
        stderr = f"\nits stderr ended with:\n{tail}" if tail else "\nits stderr was empty"
        return f"cannot load plugin from {launch.directory} ({command}): {cause}{stderr}"

    def __repr__(self) -> str:
        return (
            f"<SubprocessPlugin {self.identity.unique_identifier} from {self.directory}"
            f" under {self.python}>"
        )


def _wait_until_ready(process: PluginProcess, deadline: float) -> bool:
    while not process.ready.wait(0.02):
        if process.exited.is_set() or time.monotonic() >= deadline:
            return process.ready.is_set()
    return not process.exited.is_set()


def _interpreter(python: Path | str | None) -> str:
    """The Python to run: this one by default; a virtual environment stands for its python."""
    if python is None:
        return sys.executable
    path = Path(python)
    if path.is_dir():
        return str(path / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    return str(path)


def _stop_if_silent(process: PluginProcess, seconds: float) -> None:
    """As the daemon does with an instance that sends no heartbeat in time."""

    def check() -> None:
        if not process.ready.is_set() and not process.exited.is_set():
            _logger.error(
                "plugin %s sent no heartbeat in %g s; stopping it", process.label, seconds
            )
            process.stop()

    timer = threading.Timer(seconds, check)
    timer.daemon = True
    timer.start()


def _session_id(request_line: str) -> str:
    message = json_object(request_line)
    session_id = None if message is None else message.get("session_id")
    if not isinstance(session_id, str):
        raise ValueError(f"not a plugin request line: {request_line[:200]!r}")
    return session_id


def _read_manifest(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise PluginLoadError(f"cannot load plugin from {directory}: no such directory")
    manifest = directory / "manifest.yaml"
    if not manifest.is_file():
        raise PluginLoadError(f"cannot load plugin from {directory}: manifest.yaml is missing")
    try:
        document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        message = f"cannot load plugin from {directory}: manifest.yaml: {error}"
        raise PluginLoadError(message) from error
    if not isinstance(document, dict):
        raise PluginLoadError(f"cannot load plugin from {directory}: manifest.yaml is no mapping")
    return document


def _refuse_pid_one(directory: Path) -> None:
    # The SDK's stdio server exits as soon as its parent's pid is 1 (_parent_alive_check),
    # which is why the daemon's image runs tini as PID 1.
    if os.getpid() == 1:
        raise PluginLoadError(
            f"cannot load plugin from {directory} in a subprocess: the emulator runs as PID 1,"
            " and an SDK plugin process exits when its parent is PID 1. Run the container"
            " with an init process (docker run --init), as the daemon's image runs tini"
        )


def _providers(directory: Path, manifest: dict[str, Any]) -> list[ProviderSummary]:
    """The model providers the manifest declares, read from their YAML as the SDK reads them."""
    declared = (manifest.get("plugins") or {}).get("models") or []
    summaries = []
    for relative in declared:
        try:
            summaries.append(_provider(directory, _yaml(directory / str(relative))))
        except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError) as error:
            _logger.debug("cannot summarise provider %s of %s: %s", relative, directory, error)
    return summaries


def _provider(directory: Path, document: dict[str, Any]) -> ProviderSummary:
    models: dict[str, list[str]] = {}
    for section in (document.get("models") or {}).values():
        for pattern in (section or {}).get("predefined") or []:
            for path in sorted(directory.glob(str(pattern))):
                model = _yaml(path)
                models.setdefault(str(model["model_type"]), []).append(str(model["model"]))
    return ProviderSummary(
        name=str(document["provider"]),
        model_types=tuple(map(str, document.get("supported_model_types") or ())),
        models={model_type: tuple(names) for model_type, names in models.items()},
    )


def _yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} is no mapping")
    return document


def plugin_environment() -> dict[str, str]:
    """The emulator's environment, as the daemon's local runtime passes its own, plus the
    install method; calls back into Dify time out as in process unless the caller chose."""
    return {
        "MAX_INVOCATION_TIMEOUT": str(INVOCATION_TIMEOUT),
        **os.environ,
        "INSTALL_METHOD": "local",
    }
