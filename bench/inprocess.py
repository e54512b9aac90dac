"""In process, no socket: one dispatch through the app, against its two unavoidable parts.

- the emulator: a raw ASGI call of `POST .../dispatch/llm/invoke` into `create_app`, through
  the daemon's checks, binding, validation, the session, the plugin (in its worker thread) and
  the framing, until the last item is written;
- floor 1: the same raw ASGI call into a bare FastAPI route that reads the body and streams
  the same number of fixed items;
- floor 2: the SDK's own router running the same request line on the same plugin, in the
  calling thread, with no HTTP at all (`SdkPlugin.execute`).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.bare import create_bare_app
from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.contract.routes import ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from emulator.runtime import InProcessPlugin, import_sdk
from emulator.runtime.registry import PluginSet
from emulator.runtime.sdk import RequestEnvelope
from emulator.server.app import create_app
from emulator.sessions import new_session_id, request_line

KEY = "bench-key"
TENANT = "5f0c8a9e-3b1d-4c7a-9e2f-6d4b1a8c7e30"
LLM = ROUTES_BY_PATH["llm/invoke"]


def llm_body(items: int) -> bytes:
    """An llm/invoke body whose answer has `items` items: the session head, words, usage."""
    body = {
        "data": {
            "provider": "echo",
            "model_type": "llm",
            "model": "echo-1",
            "credentials": {"api_key": "k"},
            "prompt_messages": [{"role": "user", "content": "Hello", "name": None}],
            "model_parameters": {"chunks": items - 2},
            "tools": None,
            "stop": None,
            "stream": True,
        },
        "user_id": "user-1",
        "app_id": "app-1",
    }
    return json.dumps(body).encode()


HEADERS = [
    (b"x-api-key", KEY.encode()),
    (b"x-plugin-id", b"emulator/echo"),
    (b"content-type", b"application/json"),
]


async def asgi_post(app: Any, path: str, body: bytes) -> bytes:
    """POST `body` to the app as uvicorn would hand it over; return the whole answer."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": HEADERS,
        "server": ("127.0.0.1", 5002),
        "client": ("127.0.0.1", 40000),
        "state": {},
    }
    received = False
    answered = asyncio.Event()
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    answered.set()
    return b"".join(parts)


class FrameCount:
    """The sink the SDK writes to: counts the frames."""

    def __init__(self) -> None:
        self.frames = 0

    def write(self, text: str) -> None:
        self.frames += text.count('"event":"session"')

    def done(self) -> None:
        pass


def echo_plugin() -> InProcessPlugin:
    import_sdk()
    (plugin,) = PluginSet.load([EXAMPLE_PLUGIN])
    return plugin


def sdk_runner(plugin: InProcessPlugin, items: int) -> Callable[[], int]:
    """Run the request line on the plugin through the SDK's router; return the frame count."""
    bound = bind(LLM.data_model, llm_body(items), TENANT, "application/json")
    # The runtime keeps the SDK plugin private; the floor needs exactly that object.
    sdk_plugin = plugin._sdk_plugin

    def run() -> int:
        line = request_line(LLM, bound.values, new_session_id())
        sink = FrameCount()
        sdk_plugin.execute(RequestEnvelope.parse(line), sink)
        return sink.frames

    return run


def timings(run: Callable[[], object], repeat: int, warm_up: int) -> list[float]:
    """Seconds per call of `run`, after `warm_up` calls."""
    for _ in range(warm_up):
        run()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
    }


def measure_dispatch(items: int = 10, repeat: int = 300) -> dict[str, dict[str, float]]:
    """The emulator's in-process dispatch and its two floors, each a latency summary."""
    plugin = echo_plugin()
    emulator = create_app(Settings(key=KEY), PluginSet([plugin]))
    bare = create_bare_app()
    loop = asyncio.new_event_loop()
    body = llm_body(items)
    path = f"/plugin/{TENANT}/dispatch/llm/invoke"

    def dispatch() -> bytes:
        return loop.run_until_complete(asgi_post(emulator, path, body))

    def bare_route() -> bytes:
        return loop.run_until_complete(asgi_post(bare, f"/stream/{items}", body))

    answer = dispatch()
    assert answer.count(b"data: ") == items and b'"code":0' in answer, answer[:300]
    assert bare_route().count(b"data: ") == items
    sdk = sdk_runner(plugin, items)
    assert sdk() == items + 1, "the SDK should write each item and the end"
    try:
        return {
            "emulator": summary(timings(dispatch, repeat, warm_up=30)),
            "bare_route": summary(timings(bare_route, repeat * 5, warm_up=100)),
            "sdk_router": summary(timings(sdk, repeat, warm_up=30)),
        }
    finally:
        loop.close()


def sdk_per_item(items: int = 1000, repeat: int = 5) -> float:
    """Microseconds per item when the SDK's router alone streams `items` items."""
    run = sdk_runner(echo_plugin(), items)
    return statistics.median(timings(run, repeat, warm_up=1)) * 1e6 / items
