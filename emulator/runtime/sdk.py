"""Every touch of the ``dify_plugin`` package, in one place.

No other module imports ``dify_plugin``. Importing this module imports nothing of
the SDK; :func:`import_sdk` does, once, with its side effects under control:

- gevent: ``dify_plugin/_gevent.py`` runs ``gevent.monkey.patch_all()`` at import.
  The emulator is an asyncio server that needs real threads and sockets, so
  ``patch_all`` is a no-op while the SDK is imported (and restored afterwards).
  Production plugins run patched; plugins that rely on cooperative I/O may
  behave differently here.
- ``.env``: the SDK builds ``DifyPluginEnv()`` at module level, which reads a
  ``.env`` in the current directory. The import runs in an empty temporary
  directory, so the host's ``.env`` is never read. Environment variables are
  still read, deliberately: that is how a plugin process is configured, and a
  bad value (``INSTALL_METHOD=bogus``) makes the import fail loudly.
- logging: the SDK's ``plugin_logger_handler`` writes JSON lines to the stdout
  captured at import. Its records go to the ``emulator.plugin`` logger instead.
  The original record still propagates under its own logger name as usual.

Every plugin runs with :func:`plugin_config`: install method ``local``, so a
call back into Dify (``session.storage.get``, ``session.model.llm.invoke``)
goes out through the request's writer as an ``invoke`` session message, and
its answer comes back through :meth:`SdkPlugin.deliver`, as the daemon's
``backwards_response`` lines on stdin would. A call nobody answers fails after
``MAX_INVOCATION_TIMEOUT`` seconds of silence: the SDK's 250 by default, here
:data:`INVOCATION_TIMEOUT` unless that variable is set.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import inspect
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Generator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import TypeAdapter

if TYPE_CHECKING:
    from dify_plugin import DifyPluginEnv, Plugin
    from dify_plugin.core.plugin_registration import PluginRegistration
    from dify_plugin.core.server.__base.request_reader import RequestReader
    from dify_plugin.core.server.__base.response_writer import ResponseWriter

SDK_DISTRIBUTION = "dify-plugin"
INVOCATION_TIMEOUT = 10
"""Seconds a call back into Dify waits without an answer before the plugin's SDK gives up."""
PENDING_REPLIES = 1000
"""Replies kept for calls whose plugin has not started to listen yet (see `_adapters`)."""
PLUGIN_LOGGER_NAME = "emulator.plugin"

# chdir is process-wide: the SDK import and every plugin load take this lock.
working_directory_lock = threading.RLock()

_logger = logging.getLogger(PLUGIN_LOGGER_NAME)
_json_object = TypeAdapter(dict[str, Any])
_dispatch_result: ContextVar[object] = ContextVar("emulator_dispatch_result", default=None)
SessionObserver = Callable[[dict[str, Any]], None]
"""Receives the session the SDK built for a request, as plain fields (see `session_fields`)."""

_session_observer: ContextVar[SessionObserver | None] = ContextVar(
    "emulator_session_observer", default=None
)


class FrameSink(Protocol):
    """Receives the text an SDK ``ResponseWriter`` writes."""

    def write(self, text: str) -> None: ...

    def done(self) -> None: ...


@dataclass(frozen=True)
class ProviderSummary:
    """A model provider a plugin declares, as the SDK registered it."""

    name: str
    model_types: tuple[str, ...]
    models: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class RequestEnvelope:
    """One request line, read the way the SDK's stdio reader reads it."""

    session_id: str
    data: dict[str, Any]
    conversation_id: str | None = None
    message_id: str | None = None
    app_id: str | None = None
    endpoint_id: str | None = None
    context: dict[str, Any] | None = None

    @classmethod
    def parse(cls, line: str) -> RequestEnvelope:
        """Parse a request line; raise ValueError if it is not a request the SDK would run."""
        try:
            message = _json_object.validate_json(line)
            session_id, event, data = message["session_id"], message["event"], message["data"]
        except (ValueError, KeyError) as error:
            raise ValueError(f"not a plugin request line: {error!r}: {line[:200]!r}") from error
        if event != "request":
            raise ValueError(f"request line: event: expected 'request', got {event!r}")
        if not isinstance(session_id, str):
            raise ValueError(f"request line: session_id: expected a string, got {session_id!r}")
        return cls(
            session_id=session_id,
            data=data,
            conversation_id=message.get("conversation_id"),
            message_id=message.get("message_id"),
            app_id=message.get("app_id"),
            endpoint_id=message.get("endpoint_id"),
            context=message.get("context"),
        )


def import_sdk() -> ModuleType:
    """Import ``dify_plugin`` once, without patching the process, and return it.

    Call it early, before serving: the import briefly changes the working
    directory of the whole process. It works from any thread because the gevent
    patch (the reason the SDK's own import needs the main thread) is skipped.
    """
    with working_directory_lock:
        module = sys.modules.get("dify_plugin")
        if module is None:
            module = _import_unpatched()
        else:
            _warn_if_patched()
        _route_plugin_logs()
        return module


def sdk_version() -> str:
    """Return the installed dify-plugin version, e.g. ``"0.10.2"``."""
    return importlib.metadata.version(SDK_DISTRIBUTION)


@functools.cache
def plugin_config() -> DifyPluginEnv:
    """Return the SDK settings every plugin runs with (env read once, no ``.env``)."""
    import_sdk()
    from dify_plugin import DifyPluginEnv
    from dify_plugin.config.config import InstallMethod

    settings = DifyPluginEnv(_env_file=None)
    update: dict[str, Any] = {
        "INSTALL_METHOD": InstallMethod.Local,
        "DIFY_PLUGIN_DAEMON_URL": None,
    }
    if "MAX_INVOCATION_TIMEOUT" not in os.environ:
        update["MAX_INVOCATION_TIMEOUT"] = INVOCATION_TIMEOUT
    return settings.model_copy(update=update)


class SdkPlugin:
    """A plugin as the SDK loads it: registration, executor and router, no transport.

    Build it with the plugin directory as working directory and first on
    ``sys.path``; afterwards neither is needed.
    """

    def __init__(self, default_sink: FrameSink) -> None:
        import_sdk()
        from dify_plugin.core.plugin_registration import PluginRegistration

        self._registration = PluginRegistration(plugin_config())
        self._reader = _adapters().reader()
        self._default_writer = _adapters().writer(default_sink)
        self._plugin = _headless_plugin(self._registration, self._reader, self._default_writer)

    @property
    def author(self) -> str | None:
        author: str | None = self._registration.configuration.author
        return author

    @property
    def name(self) -> str:
        name: str = self._registration.configuration.name
        return name

    @property
    def version(self) -> str:
        version: str = self._registration.configuration.version
        return version

    def providers(self) -> list[ProviderSummary]:
        """Summarise the model providers the SDK registered."""
        return [_summarise(config) for config in self._registration.models_configuration]

    def request_rejection(self, data: dict[str, Any]) -> str | None:
        """Why the SDK's own request class for this type and action refuses `data`, if it does.

        The daemon forwards what its Go types accept; the SDK then builds the request with
        pydantic, which can refuse it (null credentials, no `stop` key, ...).
        """
        for matches, request_class in self._plugin.request_classes:
            if matches(data):
                try:
                    request_class(**data)
                except Exception as error:
                    return f"{request_class.__name__} refuses it: {type(error).__name__}: {error}"
                return None
        return f"no route for type {data.get('type')!r} and action {data.get('action')!r}"

    @property
    def invocation_timeout(self) -> int:
        """Seconds a call back into Dify waits for an answer before the SDK gives up."""
        timeout: int = self._plugin.config.MAX_INVOCATION_TIMEOUT
        return timeout

    @invocation_timeout.setter
    def invocation_timeout(self, seconds: int) -> None:
        if seconds < 1:
            raise ValueError(
                f"the invocation timeout is a positive number of seconds, not {seconds}"
            )
        self._plugin.config = self._plugin.config.model_copy(
            update={"MAX_INVOCATION_TIMEOUT": seconds}
        )

    def deliver(self, line: str) -> None:
        """Hand the plugin one daemon->plugin line that answers a call back into Dify.

        Raise ValueError for a line that is not a `backwards_response` envelope.
        """
        from dify_plugin.core.entities.plugin.io import PluginInStream, PluginInStreamEvent

        try:
            message = _json_object.validate_json(line)
            session_id, event, data = message["session_id"], message["event"], message["data"]
        except (ValueError, KeyError) as error:
            raise ValueError(f"not a daemon->plugin line: {error!r}: {line[:200]!r}") from error
        if event != PluginInStreamEvent.BackwardInvocationResponse.value:
            raise ValueError(f"expected a 'backwards_response' line, got event {event!r}")
        if not isinstance(data, dict):
            raise ValueError(f"backwards_response: data: expected an object, got {data!r}")
        self._reader.deliver(
            PluginInStream(
                session_id=session_id,
                event=PluginInStreamEvent.BackwardInvocationResponse,
                data=data,
                reader=self._reader,
                writer=self._default_writer,
                conversation_id=message.get("conversation_id"),
                message_id=message.get("message_id"),
                app_id=message.get("app_id"),
                endpoint_id=message.get("endpoint_id"),
                context=message.get("context"),
            )
        )

    def forget(self, session_id: str) -> None:
        """Drop replies kept for a session that has ended."""
        self._reader.forget(session_id)

    def execute(self, request: RequestEnvelope, sink: FrameSink) -> None:
        """Run one request in the calling thread and context, as an SDK worker does.

        Every frame goes to ``sink``, the last one being ``end``. If the plugin's
        stream is left unfinished (the sink raised), it is closed here, in this
        context, so its ``finally`` blocks run and the session variable resets.
        """
        writer = _adapters().writer(sink)
        token = _dispatch_result.set(None)
        try:
            self._plugin._execute_request_in_thread(
                request.session_id,
                request.data,
                self._reader,
                writer,
                request.conversation_id,
                request.message_id,
                request.app_id,
                request.endpoint_id,
                request.context,
            )
        finally:
            _close_stream(_dispatch_result.get(), request.session_id)
            _dispatch_result.reset(token)


def _import_unpatched() -> ModuleType:
    import gevent.monkey

    patch_all = gevent.monkey.patch_all
    gevent.monkey.patch_all = _skip_patch_all
    try:
        with tempfile.TemporaryDirectory() as empty, _working_directory(Path(empty)):
            return importlib.import_module("dify_plugin")
    except Exception as error:
        error.add_note(
            "dify_plugin reads DifyPluginEnv settings (INSTALL_METHOD, MAX_WORKER, ...)"
            " from environment variables when it is imported"
        )
        raise
    finally:
        gevent.monkey.patch_all = patch_all


def _skip_patch_all(*args: object, **kwargs: object) -> None:
    del args, kwargs


def _warn_if_patched() -> None:
    import gevent.monkey

    if gevent.monkey.is_module_patched("socket"):
        warnings.warn(
            "emulator: dify_plugin was imported before emulator.runtime.sdk.import_sdk(),"
            " so gevent has monkey-patched this process; import the emulator first",
            RuntimeWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def _working_directory(directory: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)


def _route_plugin_logs() -> None:
    from dify_plugin.config.logger_format import plugin_logger_handler

    plugin_logger_handler.emit = _forward_plugin_record


def _forward_plugin_record(record: logging.LogRecord) -> None:
    if _logger.isEnabledFor(record.levelno):
        attributes = {**record.__dict__, "name": PLUGIN_LOGGER_NAME, "plugin_logger": record.name}
        _logger.handle(logging.makeLogRecord(attributes))


@dataclass(frozen=True)
class _Adapters:
    writer: Callable[[FrameSink], ResponseWriter]
    reader: Callable[[], RequestReader]
    plugin: type[Plugin]


@functools.cache
def _adapters() -> _Adapters:
    """Build the SDK subclasses the runtime needs (after the SDK is imported).

    The SDK ships no type information, so mypy --strict sees these bases as Any.
    """
    import_sdk()
    from dify_plugin import Plugin
    from dify_plugin.core.server.__base.request_reader import RequestReader
    from dify_plugin.core.server.__base.response_writer import ResponseWriter

    class SinkWriter(ResponseWriter):  # type: ignore[misc, unused-ignore]
        def __init__(self, sink: FrameSink) -> None:
            self.sink = sink

        def write(self, data: str) -> None:
            self.sink.write(data)

        def done(self) -> None:
            self.sink.done()

    class ReplyReader(RequestReader):  # type: ignore[misc, unused-ignore]
        """Requests arrive through SdkPlugin.execute; this reader only hands out the answers
        to calls back into Dify, which arrive through `deliver`.

        The SDK sends a call before it starts listening for its answer, so an answer can
        arrive first. The stdio reader would drop it and the call would wait in vain; this
        one keeps it until a listener that wants it starts.
        """

        def __init__(self) -> None:
            super().__init__()
            self.pending: list[Any] = []

        def _read_stream(self) -> Generator[Any, None, None]:
            yield from ()

        def deliver(self, line: Any) -> None:
            with self.lock:
                listeners = [reader for reader in self.readers if _wants(reader, line)]
                if not listeners:
                    self.pending.append(line)
                    del self.pending[:-PENDING_REPLIES]
                    return
            for reader in listeners:
                reader.write(line)

        def read(self, filter: Callable[[Any], bool]) -> Any:
            reader = super().read(filter)
            waiting: list[Any] = []
            kept: list[Any] = []
            with self.lock:
                for line in self.pending:
                    (waiting if _wants(reader, line) else kept).append(line)
                self.pending = kept
            for line in waiting:
                reader.write(line)
            return reader

        def forget(self, session_id: str) -> None:
            with self.lock:
                self.pending = [line for line in self.pending if line.session_id != session_id]

    class HeadlessPlugin(Plugin):  # type: ignore[misc, unused-ignore]
        """The SDK's Plugin, remembering its routes' request classes and what its router
        returned for this request."""

        def register_route(
            self,
            f: Callable[..., object],
            filter: Callable[[dict[str, Any]], bool],
            instance: object = None,
        ) -> None:
            super().register_route(f, filter, instance)
            # The router builds each request as annotation(**data), from this parameter.
            parameter = list(inspect.signature(f).parameters.values())[2 if instance else 1]
            self.request_classes.append((filter, parameter.annotation))

        def dispatch(self, session: Any, data: dict[str, Any]) -> object | None:
            _report_session(session, data)
            result: object = super().dispatch(session, data)
            _dispatch_result.set(result)
            return result

    return _Adapters(writer=SinkWriter, reader=ReplyReader, plugin=HeadlessPlugin)


def _headless_plugin(
    registration: PluginRegistration, reader: RequestReader, default_writer: ResponseWriter
) -> Plugin:
    """Set up a Plugin the way Plugin.__init__ does, minus the stdio/TCP/HTTP transport."""
    from dify_plugin.core.plugin_executor import PluginExecutor
    from dify_plugin.core.server.io_server import IOServer
    from dify_plugin.core.server.router import Router

    config = plugin_config()
    plugin = object.__new__(_adapters().plugin)
    plugin.registration = registration
    plugin.default_response_writer = default_writer
    plugin.plugin_executer = PluginExecutor(config, registration)
    IOServer.__init__(plugin, config, reader, default_writer)
    Router.__init__(plugin, reader, default_writer)
    plugin.request_classes = []
    plugin._register_request_routes()
    return plugin


def _wants(reader: Any, line: Any) -> bool:
    try:
        return bool(reader.filter(line))
    except Exception:
        _logger.exception("a backwards-invocation filter failed")
        return False


def _summarise(config: Any) -> ProviderSummary:
    model_types = tuple(model_type.value for model_type in config.supported_model_types)
    models: dict[str, list[str]] = {}
    for entity in config.models:
        models.setdefault(entity.model_type.value, []).append(entity.model)
    return ProviderSummary(
        name=config.provider,
        model_types=model_types,
        models={model_type: tuple(names) for model_type, names in models.items()},
    )


@contextlib.contextmanager
def observing_sessions(observer: SessionObserver) -> Iterator[None]:
    """Report to ``observer`` the session the SDK builds for each request started inside.

    A request runs in a copy of the context it was started from, so the observer
    travels with it into the plugin's worker thread, and is called there before
    the plugin runs.
    """
    token = _session_observer.set(observer)
    try:
        yield
    finally:
        _session_observer.reset(token)


def session_fields(session: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What the plugin reads from ``get_current_session()``, plus the request's user_id."""
    return {
        "session_id": session.session_id,
        "app_id": session.app_id,
        "conversation_id": session.conversation_id,
        "message_id": session.message_id,
        "endpoint_id": session.endpoint_id,
        "user_id": data.get("user_id"),
        "context": session.context.model_dump(mode="json"),
    }


def _report_session(session: Any, data: dict[str, Any]) -> None:
    observer = _session_observer.get()
    if observer is None:
        return
    try:
        observer(session_fields(session, data))
    except Exception:
        _logger.exception("recording the session of %s failed", session.session_id)


def _close_stream(result: object, session_id: str) -> None:
    if not isinstance(result, Generator):
        return
    try:
        result.close()
    except Exception:
        _logger.exception("closing the plugin stream of session %s failed", session_id)
