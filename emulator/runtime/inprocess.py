"""Run SDK plugins inside the emulator's process, driving the SDK's own router.

A request is the exact line the daemon writes to a plugin's stdin, read the way
the SDK's stdio reader reads it. The SDK's own router builds the Session from it
(so ``get_current_session().app_id`` is what production sees) and runs the
plugin in a worker thread of its own, inside a copy of the caller's
``contextvars`` context. Every frame the SDK writes reaches ``on_event`` in
order, the last one being the ``end`` session frame.

Plugins share top-level module names (``provider``, ``models``, ``utils``) with
each other and with the host (Dify's test suite has its own ``models``). Loading
sets the host's modules of those names aside, and afterwards moves every module
loaded from the plugin directory out of ``sys.modules`` into the plugin's own
table. Two plugins with the same module names keep their own code, and the host
keeps its modules.

Known limits:

- Imports a plugin performs lazily at request time (inside ``_invoke``, say)
  resolve against the host's ``sys.modules`` and ``sys.path``, not the plugin's:
  they may find the host's module of that name, or fail.
- Loading changes the process's working directory, ``sys.path`` and
  ``sys.modules`` for a moment, under a lock that only loads and the SDK import
  take; other threads importing at that moment may see the plugin's modules.
  Load plugins before serving.
- A client that goes away stops the plugin at its next frame. A plugin that
  blocks without yielding keeps its worker thread until it yields or returns.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import Context, copy_context
from pathlib import Path
from types import ModuleType

import yaml

from emulator.config import STDIO_MAX_BUFFER_SIZE
from emulator.runtime import sdk
from emulator.runtime.plugin import (
    EventCallback,
    PluginIdentity,
    PluginLoadError,
    StreamClosed,
    directory_checksum,
    log_line_too_long,
    manifest_entrypoint,
    missing_entrypoint,
)

_logger = logging.getLogger(__name__)

# Never set aside: the stdlib and the SDK stay the host's, as in a plugin process.
_SHARED_TOP_LEVEL_NAMES = frozenset(sys.stdlib_module_names) | {"dify_plugin"}


class RunningRequest:
    """One request running in its worker thread."""

    def __init__(self, session_id: str, thread: threading.Thread) -> None:
        self.session_id = session_id
        self._thread = thread

    @property
    def done(self) -> bool:
        """True once the plugin finished and every frame was delivered."""
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the request to finish; return whether it did."""
        self._thread.join(timeout)
        return self.done


class InProcessPlugin:
    """An SDK plugin loaded into this process; start requests on it from any thread."""

    start_may_wait = False

    def __init__(
        self,
        identity: PluginIdentity,
        directory: Path,
        sdk_plugin: sdk.SdkPlugin,
        modules: dict[str, ModuleType],
        sessions: _SessionFrames,
        max_line_bytes: int = STDIO_MAX_BUFFER_SIZE,
    ) -> None:
        self.identity = identity
        self.directory = directory
        self.providers = sdk_plugin.providers()
        self.max_line_bytes = max_line_bytes
        """The longest frame the daemon would read from the plugin as a process (its stdout
        line cap); a longer one ends the session's delivery, see `log_line_too_long`."""
        self._sdk_plugin = sdk_plugin
        self._modules = modules
        self._sessions = sessions

    @classmethod
    def load(
        cls, directory: Path, *, max_line_bytes: int = STDIO_MAX_BUFFER_SIZE
    ) -> InProcessPlugin:
        """Load the plugin in ``directory``; raise PluginLoadError if it cannot be loaded.

        ``max_line_bytes`` is the daemon's stdout line cap (PLUGIN_RUNTIME_MAX_BUFFER_SIZE).
        """
        directory = Path(directory).resolve()
        _check_layout(directory)
        checksum = directory_checksum(directory)
        sdk.import_sdk()
        sessions = _SessionFrames(directory)

        with _isolated_imports(directory) as modules:
            try:
                sdk_plugin = sdk.SdkPlugin(sessions)
            except Exception as error:
                message = f"cannot load plugin from {directory}: {type(error).__name__}: {error}"
                raise PluginLoadError(message) from error

        _check_entrypoint(directory)
        identity = PluginIdentity(
            author=sdk_plugin.author or "",
            name=sdk_plugin.name,
            version=sdk_plugin.version,
            checksum=checksum,
        )
        return cls(identity, directory, sdk_plugin, modules, sessions, max_line_bytes)

    def request_rejection(self, request_line: str) -> str | None:
        """Why the plugin's SDK would refuse to build this request, or None if it would not."""
        return self._sdk_plugin.request_rejection(sdk.RequestEnvelope.parse(request_line).data)

    def start(self, request_line: str, on_event: EventCallback) -> RunningRequest:
        """Run one daemon request line in a new worker thread; frames go to ``on_event``.

        ``on_event`` is called from the worker thread with each stdout-shaped frame
        (``{"event", "session_id", "data"}``). If it raises (``StreamClosed`` when
        the client is gone), the plugin's stream is stopped and closed, and no
        further frames are delivered.
        """
        request = sdk.RequestEnvelope.parse(request_line)
        frames = _RequestFrames(
            request.session_id, on_event, self.identity.plugin_id, self.max_line_bytes
        )
        self._sessions.register(request.session_id, frames)

        thread = threading.Thread(
            target=self._serve,
            args=(copy_context(), request, frames),
            name=f"plugin {self.identity.plugin_id} session {request.session_id}",
            daemon=True,
        )
        thread.start()
        return RunningRequest(request.session_id, thread)

    def send(self, line: str) -> None:
        """Write one daemon->plugin line that is not a new request: a `backwards_response`
        envelope answering a call a running session made back into Dify.

        The answer reaches the call even if it arrives before the SDK listens for it. A
        line for a session that is not running is dropped. Raise ValueError for a line
        that is not a `backwards_response` envelope.
        """
        if not self._sessions.running(_session_of(line)):
            _logger.info("plugin %s: dropped a line for no running session", self.directory)
            return
        self._sdk_plugin.deliver(line)

    def close(self) -> None:
        """Nothing to stop: the plugin lives in this process (requests end on their own)."""

    @property
    def backwards_timeout(self) -> int:
        """Seconds a call back into Dify waits for an answer before the plugin's SDK raises
        `invocation exited without response after N seconds`."""
        return self._sdk_plugin.invocation_timeout

    @backwards_timeout.setter
    def backwards_timeout(self, seconds: int) -> None:
        self._sdk_plugin.invocation_timeout = seconds

    def _serve(
        self, context: Context, request: sdk.RequestEnvelope, frames: _RequestFrames
    ) -> None:
        try:
            context.run(self._sdk_plugin.execute, request, frames)
        except StreamClosed:
            pass  # The client left while the SDK wrote its closing frames.
        except Exception:
            _logger.exception("plugin %s: session %s failed", self.directory, request.session_id)
        finally:
            self._sessions.unregister(request.session_id, frames)
            self._sdk_plugin.forget(request.session_id)

    def __repr__(self) -> str:
        return f"<InProcessPlugin {self.identity.unique_identifier} from {self.directory}>"


class _RequestFrames:
    """Turns the JSON text the SDK writes for one request into ``on_event`` calls."""

    def __init__(
        self, session_id: str, on_event: EventCallback, label: str, max_line_bytes: int
    ) -> None:
        self._session_id = session_id
        self._on_event = on_event
        self._label = label
        self._max_line_bytes = max_line_bytes
        self._closed = False

    def write(self, text: str) -> None:
        for line in _frame_lines(text):
            self.deliver(line)

    def done(self) -> None:
        pass

    def deliver(self, frame: str) -> None:
        """Pass one frame on; once the receiver failed, drop the rest."""
        if self._closed:
            return
        if _longer_than(frame, self._max_line_bytes):
            # As a process, this frame is one stdout line the daemon cannot read: it kills
            # the process and the session gets nothing more, so its stream times out.
            self._closed = True
            log_line_too_long(self._label, self._max_line_bytes, self._session_id)
            raise StreamClosed(f"session {self._session_id} printed a line over the cap")
        try:
            self._on_event(frame)
        except StreamClosed:
            self._closed = True
            raise
        except Exception as error:
            self._closed = True
            _logger.exception("on_event failed for session %s", self._session_id)
            raise StreamClosed(f"on_event failed for session {self._session_id}") from error


class _SessionFrames:
    """The plugin's default writer: routes each frame to its request by session_id.

    The SDK's router writes some errors here instead of to the request's writer.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._requests: dict[str, _RequestFrames] = {}

    def register(self, session_id: str, frames: _RequestFrames) -> None:
        with self._lock:
            if session_id in self._requests:
                raise ValueError(f"session_id {session_id!r} is already running in this plugin")
            self._requests[session_id] = frames

    def unregister(self, session_id: str, frames: _RequestFrames) -> None:
        with self._lock:
            if self._requests.get(session_id) is frames:
                del self._requests[session_id]

    def running(self, session_id: str | None) -> bool:
        with self._lock:
            return session_id in self._requests

    def write(self, text: str) -> None:
        for line in _frame_lines(text):
            self._route(line)

    def done(self) -> None:
        pass

    def _route(self, frame: str) -> None:
        session_id = json.loads(frame).get("session_id") or ""
        with self._lock:
            frames = self._requests.get(session_id)
        if frames is None:
            _logger.warning("plugin %s wrote a frame for no request: %s", self._directory, frame)
            return
        frames.deliver(frame)


def _longer_than(frame: str, cap: int) -> bool:
    """Whether the frame's UTF-8 bytes reach `cap`; encoded only when its length is in doubt
    (a character is 1 to 4 bytes), so ordinary frames are not copied to be counted."""
    if len(frame) * 4 < cap:
        return False
    return len(frame) >= cap or len(frame.encode()) >= cap


def _session_of(line: str) -> str | None:
    try:
        message = json.loads(line)
    except ValueError as error:
        raise ValueError(f"not a daemon->plugin line: {error}: {line[:200]!r}") from error
    session_id = message.get("session_id") if isinstance(message, dict) else None
    return session_id if isinstance(session_id, str) else None


def _frame_lines(text: str) -> Iterator[str]:
    # The SDK writes each frame's JSON and its "\n\n" separator as separate texts.
    for line in text.splitlines():
        if line.strip():
            yield line


def _check_layout(directory: Path) -> None:
    if not directory.is_dir():
        raise PluginLoadError(f"cannot load plugin from {directory}: no such directory")
    if not (directory / "manifest.yaml").is_file():
        raise PluginLoadError(f"cannot load plugin from {directory}: manifest.yaml is missing")
    if not (directory / "_assets").is_dir():
        raise PluginLoadError(
            f"cannot load plugin from {directory}: _assets/ is missing (the SDK requires it)"
        )


def _check_entrypoint(directory: Path) -> None:
    # Read once the SDK has loaded the manifest, so a manifest it refuses keeps its own error.
    manifest = yaml.safe_load((directory / "manifest.yaml").read_text(encoding="utf-8"))
    entrypoint = manifest_entrypoint(manifest)
    missing = missing_entrypoint(directory, entrypoint)
    if missing is not None:
        raise PluginLoadError(
            f"cannot load plugin from {directory}: its entrypoint (meta.runner.entrypoint)"
            f" {entrypoint!r} is not in the folder, so `python -m {entrypoint}` fails there"
            f" as a process and behind the daemon: {missing}"
        )


@contextlib.contextmanager
def _isolated_imports(directory: Path) -> Iterator[dict[str, ModuleType]]:
    """Import from ``directory`` as a plugin process would; yield its modules' table.

    The table is filled on exit with the modules loaded from the directory, which
    leave ``sys.modules``; the host's modules of the same names come back.
    """
    plugin_modules: dict[str, ModuleType] = {}
    top_level_names = _top_level_names(directory)

    with sdk.working_directory_lock:
        host_modules = _pop_modules(lambda name: name.partition(".")[0] in top_level_names)
        names_before = set(sys.modules)
        previous_directory = os.getcwd()
        sys.path.insert(0, str(directory))
        os.chdir(directory)
        importlib.invalidate_caches()
        try:
            yield plugin_modules
        finally:
            # Scan while the directory is still on sys.path: a namespace package
            # recomputes its __path__ from sys.path when that changes.
            loaded = set(sys.modules) - names_before
            plugin_modules.update(
                _pop_modules(lambda name: name in loaded and _lies_under(name, directory))
            )
            os.chdir(previous_directory)
            sys.path.remove(str(directory))
            sys.modules.update(host_modules)


def _top_level_names(directory: Path) -> set[str]:
    packages = {entry.name for entry in directory.iterdir() if entry.is_dir()}
    modules = {entry.stem for entry in directory.glob("*.py")}
    names = {name for name in packages | modules if name.isidentifier()}
    return names - _SHARED_TOP_LEVEL_NAMES


def _pop_modules(selected: Callable[[str], bool]) -> dict[str, ModuleType]:
    # Collect first: removing a namespace package mid-scan breaks its children's __path__.
    names = [name for name in list(sys.modules) if selected(name)]
    return {name: sys.modules.pop(name) for name in names}


def _lies_under(module_name: str, directory: Path) -> bool:
    module = sys.modules[module_name]
    spec = getattr(module, "__spec__", None)
    locations = list(getattr(spec, "submodule_search_locations", None) or [])
    paths = [getattr(module, "__file__", None), *locations]
    prefix = f"{directory}{os.sep}"
    return any(isinstance(path, str) and os.path.abspath(path).startswith(prefix) for path in paths)
