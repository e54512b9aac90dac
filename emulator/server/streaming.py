"""From a plugin's worker thread to the daemon's HTTP answer.

`FrameBridge` carries session frames from the plugin's thread to the event loop, with a bounded
buffer so a slow client slows the plugin rather than filling memory; once closed it refuses
frames, which stops the plugin. `session_items` turns frames into the daemon's items (and the
`killed by timeout` item), and `planned_items` ends them where a fault says so.
An `invoke` frame (a call back into Dify) goes to `CallsBack`, which starts
answering it through the plugin's `send`, as the daemon does, without an item of its own.
`EventStream` frames them as the daemon does: `data: <json>\\n\\n`, `Content-Type:
text/event-stream` exactly, and no status or headers before the first item; it applies the
faults' delays and cuts, and records each item it writes. A fault's rule goes into the
dispatch's journal entry when the fault takes effect, not before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from emulator.backwards import Backwards, Caller
from emulator.backwards import Send as SendLine
from emulator.contract import envelopes
from emulator.contract.envelopes import TIMEOUT_MESSAGE
from emulator.contract.gojson import RawMessage
from emulator.contract.routes import Route
from emulator.faults import StreamPlan
from emulator.journal import Dispatch
from emulator.runtime import StreamClosed
from emulator.sessions import (
    Closed,
    Invoke,
    Item,
    PluginEvent,
    SessionReader,
    read_plugin_event,
)

logger = logging.getLogger("emulator.plugin")

BUFFERED_FRAMES = 64


class FrameBridge:
    """One session's frames, handed from the plugin's thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session_id: str) -> None:
        self._loop = loop
        self._session_id = session_id
        self._frames: asyncio.Queue[RawMessage | None] = asyncio.Queue()
        self._room = threading.Semaphore(BUFFERED_FRAMES)
        self._closed = False

    def on_event(self, line: str) -> None:
        """Called in the plugin's thread with each line it prints."""
        if self._closed:
            raise StreamClosed(self._session_id)
        event = read_plugin_event(line)
        if event is None or event.event != "session":
            _log_plugin_event(self._session_id, event)
            return
        self._room.acquire()
        if self._closed:
            raise StreamClosed(self._session_id)
        self._loop.call_soon_threadsafe(self._frames.put_nowait, event.data)

    async def next_frame(self) -> RawMessage | None:
        frame = await self._frames.get()
        self._room.release()
        return frame

    def close(self) -> None:
        """Refuse every further frame; wakes a plugin thread blocked on a full buffer."""
        self._closed = True
        self._room.release(BUFFERED_FRAMES + 1)


def _log_plugin_event(session_id: str, event: PluginEvent | None) -> None:
    if event is not None and event.event in ("log", "error"):
        logger.info("plugin %s event (session %s): %s", event.event, session_id, event.data)


@dataclass(frozen=True)
class CallsBack:
    """Where one session's calls back into Dify go, and where their answers go."""

    backwards: Backwards
    caller: Caller
    send: SendLine
    record: Dispatch

    def answer(self, invoke: Invoke) -> Item | None:
        """Start answering the call; an item only when the daemon could not read it."""
        outcome = self.backwards.dispatch(invoke.data, self.caller, self.send)
        if isinstance(outcome, str):
            message = f"invoke dify failed: {outcome}"
            return Item(envelopes.stream_error("invoke_dify_error", message), is_error=True)
        self.record.record_backwards(outcome)
        return None


async def session_items(
    route: Route, bridge: FrameBridge, timeout: float | None, calls: CallsBack
) -> AsyncGenerator[Item, None]:
    """The daemon's items for one session, until `end`, an error item, or the timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    reader = SessionReader(route)
    while True:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
        try:
            frame = await asyncio.wait_for(bridge.next_frame(), remaining)
        except TimeoutError:
            yield Item(envelopes.error(envelopes.ErrorType.INTERNAL, TIMEOUT_MESSAGE), True)
            return
        item = reader.read(frame)
        if isinstance(item, Closed):
            return
        if isinstance(item, Invoke):
            item = calls.answer(item)
        if item is not None:
            yield item
            if item.is_error:
                return


async def planned_items(
    items: AsyncGenerator[Item, None], plan: StreamPlan, record: Dispatch
) -> AsyncGenerator[Item, None]:
    """The session's items, ended by the plan's error item once enough have gone out, or in
    place of the end of a shorter stream. An error of the session's own (the plugin's, the
    timeout) that comes first ends it instead."""
    async with aclosing(items):
        if plan.ending is None:
            async for item in items:
                yield item
            return
        remaining, envelope = plan.ending
        if remaining:
            async for item in items:
                yield item
                if item.is_error:
                    return
                remaining -= 1
                if not remaining:
                    break
    record_fault(record, plan, "ending")
    yield Item(envelope, is_error=True)


def record_fault(record: Dispatch, plan: StreamPlan, setting: str) -> None:
    """List the rule behind one of the plan's settings in the journal, once."""
    applied = plan.rules.get(setting)
    if applied is not None and applied not in record.faults:
        record.faults.append(applied)


class EventStream(Response):
    """An ASGI response that writes SSE items the way the daemon's gin writer does."""

    media_type = "text/event-stream"

    def __init__(
        self,
        items: AsyncGenerator[Item, None],
        headers: list[tuple[str, str]],
        record: Dispatch,
        plan: StreamPlan | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._items = items
        self._extra_headers = headers
        self._record = record
        self._plan = plan or StreamPlan()
        self._after_close: list[Callable[[], None]] = []
        self.items_sent = 0
        self.client_gone = False

    def after_close(self, callback: Callable[[], None]) -> None:
        """Runs once the stream has ended, however it ended."""
        self._after_close.append(callback)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.ensure_future(self._write(send))
        watcher = asyncio.ensure_future(_client_gone(receive))
        try:
            done, _ = await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            self.client_gone = writer not in done
        finally:
            for task in (writer, watcher):
                task.cancel()
            outcomes = await asyncio.gather(writer, watcher, return_exceptions=True)
            for callback in self._after_close:
                callback()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.error("stream failed", exc_info=outcome)

    async def _write(self, send: Send) -> None:
        async with aclosing(self._items):
            async for item in self._items:
                await self._pause_before_item()
                if not self.items_sent:
                    await self._start(send)
                self._record.record_item(item.envelope, item.is_error)
                body = b"data: " + item.envelope.encode() + b"\n\n"
                await send({"type": "http.response.body", "body": body, "more_body": True})
                self.items_sent += 1
                if self.items_sent == self._plan.cut_after:
                    self._cut()
                    return
        if self.items_sent and self._plan.cut_after is not None:
            self._cut()  # a shorter stream than the cut asked for: it drops its end instead
            return
        if not self.items_sent:
            await self._pause_before_item()
            await self._start(send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _cut(self) -> None:
        # Returning without the last body message makes the server drop the connection: the
        # client sees an unfinished chunked body. (Uvicorn answers an app that sent nothing
        # with a 500 of its own, so a stream with no item is never cut.)
        record_fault(self._record, self._plan, "cut_after")

    async def _pause_before_item(self) -> None:
        plan = self._plan
        setting = "item_delay" if self.items_sent else "first_item_delay"
        record_fault(self._record, plan, setting)
        delay = plan.item_delay if self.items_sent else plan.first_item_delay
        if delay:
            await asyncio.sleep(delay)

    async def _start(self, send: Send) -> None:
        self._record.status = 200
        self._record.streamed = True
        headers = [(b"content-type", self.media_type.encode())]
        headers += [(name.encode(), value.encode()) for name, value in self._extra_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
