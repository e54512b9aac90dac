"""Requests as raw ASGI calls, and the check that an answer is one the daemon could give.

A raw call builds the scope as uvicorn does, so it can carry what an HTTP client would refuse
or rewrite: any header bytes, any path, a body split anywhere. `daemon_problems` lists what is
wrong with an answer: a 5xx where the daemon answers none, an error that is no daemon envelope,
a stream item out of frame, an answer left unfinished.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from emulator.contract.envelopes import NO_ROUTE
from emulator.contract.routes import ROUTES

JSON_TYPE = "application/json; charset=utf-8"
STREAM_TYPE = "text/event-stream"
POLLING_PATHS = {route.url_path.split("}", 1)[1] for route in ROUTES if not route.streamed}
TOO_DEEP_START = "emulator: this body nests too deep"


@dataclass
class Request:
    method: str
    raw_path: bytes
    headers: list[tuple[bytes, bytes]]
    body_parts: list[bytes] = field(default_factory=list)

    @property
    def path(self) -> str:
        return unquote(self.raw_path.partition(b"?")[0].decode("ascii"))


@dataclass
class Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    raised: BaseException | None = None

    def header(self, name: str) -> str | None:
        wanted = name.encode()
        found = [value for key, value in self.headers if key.lower() == wanted]
        return found[0].decode("latin-1") if found else None


async def call(app: Any, request: Request, seconds: float) -> Answer:
    """Send `request` to the ASGI app and wait for its whole answer, at most `seconds`."""
    path, _, query = request.raw_path.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.headers],
        "server": ("127.0.0.1", 5002),
        "client": ("127.0.0.1", 40000),
        "state": {},
    }
    parts = list(request.body_parts) or [b""]
    answered = asyncio.Event()
    answer = Answer()

    async def receive() -> dict[str, Any]:
        if parts:
            body = parts.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(parts)}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status, answer.headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")
            answer.complete = not message.get("more_body", False)

    try:
        await asyncio.wait_for(app(scope, receive, send), seconds)
    except Exception as error:
        answer.raised = error
    answered.set()
    return answer


def daemon_problems(request: Request, answer: Answer) -> list[str]:
    """What makes `answer` one the daemon could not have given to `request`; [] if none."""
    if answer.raised is not None:
        return [f"the app raised {answer.raised!r}"]
    if not answer.complete:
        return ["the answer was left unfinished"]
    status, content_type = answer.status, answer.header("content-type")
    if status >= 500:
        return _server_error_problems(request, answer)
    if status in (301, 307):
        location = answer.header("location")
        return [] if location and request.path.endswith("/") else [f"a {status} to {location}"]
    if status == 204 or (status in (200, 201) and request.path.startswith("/_emulator/")):
        return []
    if status == 200 and request.path == "/health/check":
        return [] if json.loads(answer.body)["status"] == "ok" else ["an unhealthy health check"]
    if status == 200 and content_type == STREAM_TYPE:
        return _stream_problems(answer.body)
    if content_type != JSON_TYPE and answer.body != NO_ROUTE.encode():
        return [f"status {status} with content type {content_type!r}"]
    if status == 404 and answer.body == NO_ROUTE.encode():
        return []
    return _envelope_problems(answer.body, success=status == 200)


def _server_error_problems(request: Request, answer: Answer) -> list[str]:
    problems = _envelope_problems(answer.body, success=False)
    if problems:
        return problems
    error = json.loads(json.loads(answer.body)["message"])
    if error["message"].startswith(TOO_DEEP_START):
        return []
    polling = any(request.path.endswith(path) for path in POLLING_PATHS)
    if polling and error["error_type"] == "PluginInvokeError":
        return []
    return [f"a {answer.status} the daemon would not answer: {error}"]


def _stream_problems(body: bytes) -> list[str]:
    if not body:
        return []
    if not body.startswith(b"data: ") or not body.endswith(b"\n\n"):
        return [f"a stream out of frame: {body[:200]!r}"]
    problems = []
    for item in body[: -len(b"\n\n")].split(b"\n\ndata: "):
        problems += _envelope_problems(item.removeprefix(b"data: "), success=None)
    return problems


def _envelope_problems(text: bytes, success: bool | None) -> list[str]:
    """A `{code, message, data}` envelope; an error's message is `{message, error_type, args}`."""
    try:
        envelope = json.loads(text)
    except ValueError:
        return [f"not JSON: {text[:200]!r}"]
    if not isinstance(envelope, dict) or list(envelope) != ["code", "message", "data"]:
        return [f"not an envelope: {text[:200]!r}"]
    code = envelope["code"]
    if not isinstance(code, int) or (success is not None and (code == 0) != success):
        return [f"code {code!r} in {text[:200]!r}"]
    if code == 0:
        return []
    try:
        error = json.loads(envelope["message"])
    except (TypeError, ValueError):
        return [f"an error message that is not JSON: {text[:200]!r}"]
    if envelope["data"] is not None or list(error) != ["message", "error_type", "args"]:
        return [f"not a daemon error: {text[:200]!r}"]
    return []
