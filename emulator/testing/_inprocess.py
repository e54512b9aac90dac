"""The emulator's app answering httpx requests in process, through respx, with no socket.

The app runs on an event loop of its own, in a daemon thread, so sync clients (Dify's pooled
`httpx.Client`) and async ones alike can call it from any thread, a sync one even from inside
a running event loop (it blocks that loop, as it would over a socket). Answers arrive whole.
An answer the app leaves unfinished (a cut stream) gives its body, then the error httpx raises
for a connection dropped mid-body, as over a socket.

Only the daemon's base URL is taken. Other traffic goes to whatever the process would do
without the emulator: a test's own respx routers, if it started some, else the real transport.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import respx

ASGIApp = Any

NO_RESPONSE = "Server disconnected without sending a response."
# What h11 (httpx's HTTP/1.1 parser) says when a chunked body stops short; only streams,
# which are chunked, are ever cut.
INCOMPLETE_BODY = (
    "peer closed connection without sending complete message body (incomplete chunked read)"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AppLoop:
    """An event loop in a daemon thread, running the app for requests from any thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="daemon-emulator in process", daemon=True
        )
        self._thread.start()

    def answer(self, request: httpx.Request) -> httpx.Response:
        """Send `request` to the app and wait for its whole answer."""
        future = asyncio.run_coroutine_threadsafe(_exchange(self.app, request), self._loop)
        return future.result().response(request)

    async def answer_async(self, request: httpx.Request) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(_exchange(self.app, request), self._loop)
        exchange = await asyncio.wrap_future(future)
        return exchange.response(request)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


_ASYNC_CLIENT: ContextVar[bool] = ContextVar("daemon_emulator_async_client", default=False)
"""Whether respx is resolving a request for an async client (set by `_Router`)."""


class _Router(respx.MockRouter):
    """respx's router, telling the side effect which kind of client asked, and keeping no
    call log (the journal records dispatches; a log of every call would grow all session)."""

    def resolve(self, request: httpx.Request) -> Any:
        token = _ASYNC_CLIENT.set(False)
        try:
            return super().resolve(request)
        finally:
            _ASYNC_CLIENT.reset(token)

    async def aresolve(self, request: httpx.Request) -> Any:
        token = _ASYNC_CLIENT.set(True)
        try:
            return await super().aresolve(request)
        finally:
            _ASYNC_CLIENT.reset(token)

    def record(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs


class Interception:
    """Routes the process's httpx traffic for one base URL into the app, while started."""

    def __init__(self, base_url: str, app_loop: AppLoop) -> None:
        url = httpx.URL(base_url)
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
        self._app_loop = app_loop
        self._router = _Router(assert_all_called=False, assert_all_mocked=True)
        self._router.route(scheme=url.scheme, host=url.host, port=port).mock(side_effect=self)
        self._router.route().mock(side_effect=self._not_the_daemon)
        self.active = False

    def start(self) -> None:
        """Patch httpx's transports (once: a started interception stays started)."""
        if not self.active:
            self._router.start()
            # respx asks its routers in the order they started, and the first that answers
            # wins: a test's router started earlier (one that answers every request, say)
            # must not take the daemon's URL.
            if (mocker := self._router.Mocker) is not None:
                mocker.routers.remove(self._router)
                mocker.routers.insert(0, self._router)
            self.active = True

    def stop(self) -> None:
        if self.active:
            self._router.stop(clear=True, reset=True, quiet=True)
            self.active = False

    def __call__(self, request: httpx.Request) -> httpx.Response | Coroutine[Any, Any, Any]:
        # respx calls one side effect for sync and async clients alike, and awaits what it
        # returns only for an async client. A sync client inside a running event loop waits
        # here for the app's own loop, in its own thread, as it would wait for a socket.
        if _ASYNC_CLIENT.get():
            return self._app_loop.answer_async(request)
        return self._app_loop.answer(request)

    def _not_the_daemon(self, request: httpx.Request) -> httpx.Request | None:
        """Traffic for other URLs: with other respx routers started (a test's own mocks),
        no match here, so respx asks them; with none, through to the real transport."""
        mocker = getattr(self._router, "Mocker", None)
        others = [router for router in getattr(mocker, "routers", ()) if router is not self._router]
        return None if others else request


@dataclass
class _Exchange:
    """What the app sent for one request."""

    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    complete: bool = False

    def response(self, request: httpx.Request) -> httpx.Response:
        if self.status is None:
            raise httpx.RemoteProtocolError(NO_RESPONSE, request=request)
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self.headers
        ]
        if self.complete:
            body: httpx.SyncByteStream = httpx.ByteStream(b"".join(self.parts))
        else:
            body = _CutBody(self.parts, request)
        return httpx.Response(self.status, headers=headers, stream=body, request=request)


class _CutBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body whose connection dropped: the parts that arrived, then the client's error."""

    def __init__(self, parts: list[bytes], request: httpx.Request) -> None:
        self._parts = parts
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts
        raise httpx.RemoteProtocolError(INCOMPLETE_BODY, request=self._request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part
        raise httpx.RemoteProtocolError(INCOMPLETE_BODY, request=self._request)


async def _exchange(app: ASGIApp, request: httpx.Request) -> _Exchange:
    exchange = _Exchange()
    answered = asyncio.Event()
    pending = [{"type": "http.request", "body": request.content, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            exchange.parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                exchange.complete = True
                answered.set()

    try:
        await app(_scope(request), receive, send)
    finally:
        answered.set()
    return exchange


def _scope(request: httpx.Request) -> dict[str, Any]:
    url = request.url
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": url.scheme,
        "path": unquote(url.path),
        "raw_path": url.raw_path.split(b"?", 1)[0],
        "query_string": url.query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.headers.raw],
        "server": (url.host, url.port or _DEFAULT_PORTS.get(url.scheme)),
        "client": ("127.0.0.1", 0),
    }
