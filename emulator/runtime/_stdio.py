"""One process of a plugin, on the SDK's stdio protocol: its pipes, readers and sessions.

The daemon (local_runtime/instance.go) reads the process's stdout line by line: the first
``heartbeat`` event marks it ready, ``session`` events go to the session they name, ``log``
events are logged and the rest is dropped; in local mode the SDK first prints its
manifest, which is no event. Stderr is logged, and its last 1024 bytes are kept. Once
stdout closes the process is killed and reaped, and its sessions get nothing more.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import subprocess
import threading
import weakref
from typing import IO, Any

from emulator.config import STDIO_MAX_BUFFER_SIZE
from emulator.runtime.plugin import EventCallback, StreamClosed, log_line_too_long
from emulator.runtime.sdk import PLUGIN_LOGGER_NAME

STDERR_TAIL_BYTES = 1024
"""How much stderr a load error quotes: the daemon keeps the last 1024 bytes (MAX_ERR_MSG_LEN)."""

MAX_LINE_BYTES = STDIO_MAX_BUFFER_SIZE
"""The longest stdout line the daemon reads by default (PLUGIN_RUNTIME_MAX_BUFFER_SIZE); a
longer one ends its reader, and with it the process."""

_logger = logging.getLogger("emulator.runtime")
_plugin_logger = logging.getLogger(PLUGIN_LOGGER_NAME)
_running: weakref.WeakSet[PluginProcess] = weakref.WeakSet()


class Session:
    def __init__(self, session_id: str, on_event: EventCallback) -> None:
        self.session_id = session_id
        self.on_event = on_event
        self.finished = threading.Event()


class PluginProcess:
    """One process of a plugin: its pipes, its reader threads and its open sessions."""

    def __init__(
        self, popen: subprocess.Popen[bytes], label: str, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        self._popen = popen
        self._max_line_bytes = max_line_bytes
        self._label = f"{label} (pid {popen.pid})"
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque()
        self._stderr_closed = threading.Event()
        self._stopping = False
        self.ready = threading.Event()
        self.exited = threading.Event()
        _running.add(self)
        for target, name in ((self._read_stdout, "stdout"), (self._read_stderr, "stderr")):
            thread = threading.Thread(target=target, name=f"plugin {self._label} {name}")
            thread.daemon = True
            thread.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    @property
    def label(self) -> str:
        return self._label

    def open(self, session: Session) -> None:
        with self._lock:
            if session.session_id in self._sessions:
                raise ValueError(f"session_id {session.session_id!r} is already running")
            self._sessions[session.session_id] = session

    def running(self, session_id: object) -> bool:
        with self._lock:
            return isinstance(session_id, str) and session_id in self._sessions

    def forget(self, session: Session) -> None:
        with self._lock:
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
        session.finished.set()

    def write(self, line: str) -> None:
        stdin = self._popen.stdin
        if stdin is None or self.exited.is_set():
            raise BrokenPipeError(f"plugin {self._label} has exited")
        with self._write_lock:
            stdin.write(line.encode() + b"\n")
            stdin.flush()

    def stop(self) -> None:
        """Kill the process; the stdout reader then reaps it and ends its sessions."""
        self._stopping = True
        with contextlib.suppress(OSError):  # it is gone already
            self._popen.kill()
        self.exited.wait(5)

    def stderr_tail(self) -> str:
        self._stderr_closed.wait(1)
        text = "".join(self._stderr)
        return text[-STDERR_TAIL_BYTES:].rstrip("\n")

    def _read_stdout(self) -> None:
        stdout = self._popen.stdout
        assert stdout is not None
        cap = self._max_line_bytes
        try:
            for raw in iter(lambda: stdout.readline(cap), b""):
                if len(raw) == cap and not raw.endswith(b"\n"):
                    log_line_too_long(self._label, cap)
                    return
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    self._handle(line)
        finally:
            self._reap(stdout)

    def _handle(self, line: str) -> None:
        message = json_object(line)
        if message is None:
            _plugin_logger.info("plugin %s printed: %s", self._label, line[:1024])
            return
        event, session_id = message.get("event"), message.get("session_id")
        with self._lock:
            session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if session is not None:
            self._deliver(session, line, message)
        elif event == "heartbeat":
            self.ready.set()
        elif event == "log":
            _log_plugin_record(self._label, message.get("data"))
        elif event == "error":
            _plugin_logger.warning("plugin %s error event: %s", self._label, message.get("data"))
        elif event is None and not self.ready.is_set():
            _plugin_logger.debug("plugin %s announced its manifest: %s", self._label, line[:200])
        else:
            _plugin_logger.debug("plugin %s: no running session for %s", self._label, line[:200])

    def _deliver(self, session: Session, line: str, message: dict[str, Any]) -> None:
        try:
            session.on_event(line)
        except StreamClosed:
            self.forget(session)
            return
        except Exception:
            _logger.exception("on_event failed for session %s", session.session_id)
            self.forget(session)
            return
        data = message.get("data")
        if (
            message.get("event") == "session"
            and isinstance(data, dict)
            and data.get("type") == "end"
        ):
            self.forget(session)

    def _read_stderr(self) -> None:
        stderr = self._popen.stderr
        assert stderr is not None
        try:
            for raw in iter(stderr.readline, b""):
                text = raw.decode("utf-8", "replace")
                self._keep_stderr(text)
                if text.strip():
                    _plugin_logger.warning("plugin %s stderr: %s", self._label, text.rstrip())
        finally:
            self._stderr_closed.set()

    def _keep_stderr(self, text: str) -> None:
        self._stderr.append(text)
        while sum(map(len, self._stderr)) > STDERR_TAIL_BYTES and len(self._stderr) > 1:
            self._stderr.popleft()

    def _reap(self, stdout: IO[bytes]) -> None:
        # The daemon kills and reaps the process once its stdout closes.
        with contextlib.suppress(OSError):
            self._popen.kill()
        code = self._popen.wait()
        stdout.close()
        if self._popen.stdin is not None:
            # A write into the dead pipe may have left data that cannot be flushed.
            with contextlib.suppress(OSError):
                self._popen.stdin.close()
        with self._lock:
            orphans = list(self._sessions.values())
            self._sessions.clear()
        self._log_exit(code, orphans)
        for session in orphans:
            session.finished.set()
        _running.discard(self)
        self.exited.set()

    def _log_exit(self, code: int, orphans: list[Session]) -> None:
        if self._stopping and not orphans:
            _logger.info("plugin %s stopped", self._label)
            return
        left = ", ".join(session.session_id for session in orphans)
        waiting = (
            f"; sessions {left} get nothing more and end with 'killed by timeout', as"
            " behind the daemon"
            if orphans
            else ""
        )
        _logger.warning("plugin %s exited with code %s%s", self._label, code, waiting)


def json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _log_plugin_record(label: str, data: object) -> None:
    if not isinstance(data, dict):
        return
    level = logging.getLevelName(str(data.get("level", "INFO")).upper())
    level = level if isinstance(level, int) else logging.INFO
    _plugin_logger.log(level, "plugin %s: %s", label, data.get("message"))


def _stop_all() -> None:
    for process in list(_running):
        process.stop()


# A plugin process whose stdin closes does not end: the SDK's reader retries forever.
atexit.register(_stop_all)
