"""Calls forwarded to Dify's inner API as the daemon forwards them (calldify/http_request.go):
`POST <DIFY_INNER_API_URL>/inner/api/<path>` with X-Inner-Api-Key and the request as JSON;
JSON answers `{"data", "error"}`, or for streamed types length-prefixed chunks of them."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from emulator.backwards._answers import go_answer
from emulator.backwards._calls import Answer, BackwardsCall, session_traceparent

logger = logging.getLogger("emulator.backwards")

MAGIC_NUMBER = 0x0F
HEADER_LENGTH = 0x0A
DEFAULT_MAX_CHUNK = 30 * 1024 * 1024
GO_CLIENT_HEADERS = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}
CONNECT_TIMEOUT = 5.0
"""The daemon's dialer gives up connecting to Dify after 5 s (calldify/http_client.go)."""


@dataclass(frozen=True)
class BackwardsSettings:
    """Where calls back into Dify go: the daemon's own settings and env names."""

    inner_api_url: str | None = None
    """DIFY_INNER_API_URL: Dify's API server; unset, nothing is forwarded."""
    inner_api_key: str = ""
    """DIFY_INNER_API_KEY: sent as X-Inner-Api-Key."""
    write_timeout: float = 5.0
    """DIFY_BACKWARDS_INVOCATION_WRITE_TIMEOUT (the env value is milliseconds)."""
    read_timeout: float = 240.0
    """DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT (the env value is milliseconds)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackwardsSettings:
        env = os.environ if env is None else env
        return cls(
            inner_api_url=env.get("DIFY_INNER_API_URL") or None,
            inner_api_key=env.get("DIFY_INNER_API_KEY", ""),
            write_timeout=_milliseconds(env, "DIFY_BACKWARDS_INVOCATION_WRITE_TIMEOUT", 5000),
            read_timeout=_milliseconds(env, "DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT", 240000),
        )


def _milliseconds(env: Mapping[str, str], name: str, default: int) -> float:
    text = env.get(name)
    if text is None:
        return default / 1000
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of milliseconds, not {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")
    return value / 1000


@dataclass(frozen=True)
class Route:
    """How the daemon forwards one invoke type (calldify/http_request.go, task.go)."""

    path: str
    failure: str
    """The daemon's prefix for a failed call, e.g. `invoke llm model failed`."""
    stream_failure: str | None = None
    """For streamed answers: the prefix for a failure while reading the stream."""
    unwrap: bool = False
    """Dify nests the answer one level deeper (`{"data": {"data": ...}}`)."""

    @property
    def streamed(self) -> bool:
        return self.stream_failure is not None


FORWARDED: dict[str, Route] = {
    "tool": Route("invoke/tool", "invoke tool failed", "read tool response failed"),
    "llm": Route("invoke/llm", "invoke llm model failed", "read llm model failed"),
    "llm_structured_output": Route(
        "invoke/llm/structured-output",
        "invoke llm with structured output model failed",
        "read llm with structured output model failed",
    ),
    "text_embedding": Route("invoke/text-embedding", "invoke text-embedding model failed"),
    "multimodal_embedding": Route(
        "invoke/multimodal-embedding", "invoke multimodal embedding model failed"
    ),
    "rerank": Route("invoke/rerank", "invoke rerank model failed"),
    "multimodal_rerank": Route("invoke/multimodal-rerank", "invoke multimodal rerank model failed"),
    "tts": Route("invoke/tts", "invoke tts model failed", "read tts model failed"),
    "speech2text": Route("invoke/speech2text", "invoke speech2text model failed"),
    "moderation": Route("invoke/moderation", "invoke moderation model failed"),
    "app": Route("invoke/app", "invoke app failed", "read app failed"),
    "node_parameter_extractor": Route(
        "invoke/parameter-extractor", "invoke parameter extractor failed"
    ),
    "node_question_classifier": Route(
        "invoke/question-classifier", "invoke question classifier failed"
    ),
    "system_summary": Route("invoke/summary", "invoke summary failed"),
    "upload_file": Route("upload/file/request", "upload file failed"),
    "fetch_app": Route("fetch/app/info", "fetch app failed", unwrap=True),
}


def inner_api_url(base_url: str, path: str) -> str:
    """url.JoinPath(base, "inner", "api", path): the base's path joined and cleaned as Go's
    path.Join cleans it (one slash between parts, `.` and `..` resolved), its query kept."""
    base = urlsplit(base_url)
    joined = posixpath.normpath("/".join(["", base.path, "inner", "api", path]))
    return urlunsplit(base._replace(path="/" + joined.lstrip("/")))


def forward(
    settings: BackwardsSettings, route: Route, call: BackwardsCall, body: str, answer: Answer
) -> None:
    """Send `body` (the request as the daemon encodes it) to Dify; relay what comes back."""
    url = inner_api_url(settings.inner_api_url or "", route.path)
    headers = {
        "traceparent": call.caller.traceparent or session_traceparent(None),
        "X-Inner-Api-Key": settings.inner_api_key,
        "Content-Type": "application/json",
    }
    timeout = httpx.Timeout(
        connect=CONNECT_TIMEOUT,
        write=settings.write_timeout,
        read=settings.read_timeout,
        pool=None,
    )
    try:
        with (
            _go_like_client(timeout) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            if route.streamed:
                _relay_stream(route, call.invoke_type, response, answer)
            else:
                _relay_struct(route, call.invoke_type, response, answer)
    except httpx.HTTPError as error:
        answer.error(f'{route.failure}: Post "{url}": {_transport_reason(error)}')


def _go_like_client(timeout: httpx.Timeout) -> httpx.Client:
    """An httpx client whose own headers are those of Go's net/http client. The daemon's
    transport has no Proxy, so proxy variables in the environment are not followed."""
    client = httpx.Client(timeout=timeout, headers=GO_CLIENT_HEADERS, trust_env=False)
    for name in ("Accept", "Connection"):
        client.headers.pop(name, None)
    return client


def _transport_reason(error: httpx.HTTPError) -> str:
    reason = str(error) or type(error).__name__
    if isinstance(error, httpx.ConnectError):
        return f"dial tcp: {reason}"
    if isinstance(error, httpx.TimeoutException):
        return f"context deadline exceeded ({type(error).__name__})"
    return reason


def _relay_struct(route: Route, invoke_type: str, response: httpx.Response, answer: Answer) -> None:
    """calldify.Request: the JSON body whatever the status, `{"data", "error"}`."""
    try:
        document = json.loads(response.read())
    except ValueError as error:
        answer.error(f"{route.failure}: {error}")
        return
    if not isinstance(document, dict):
        answer.error(f"{route.failure}: json: cannot unmarshal into the response envelope")
        return
    data = document.get("data")
    if route.unwrap:
        data = data.get("data") if isinstance(data, dict) else None
    decoded = go_answer(invoke_type, data) if data is not None else None
    if decoded is not None and decoded.undecodable is not None:
        answer.error(f"{route.failure}: {decoded.undecodable}")
        return
    if problem := _envelope_problem(document) or (None if data is not None else "data is nil"):
        answer.error(f"{route.failure}: {problem}")
        return
    assert decoded is not None
    if decoded.invalid is not None:
        answer.error(f"{route.failure}: {decoded.invalid}")
        return
    answer.response_json("struct", decoded.text)


def _envelope_problem(document: dict[str, Any]) -> str | None:
    error = document.get("error")
    if isinstance(error, str) and error:
        return f"request failed: {error}"
    if document.get("data") is None:
        return "data is nil"
    return None


def _relay_stream(route: Route, invoke_type: str, response: httpx.Response, answer: Answer) -> None:
    """calldify.StreamResponse: length-prefixed chunks, each a `{"data", "error"}`."""
    if response.status_code != 200:
        text = response.read().decode("utf-8", "replace")
        answer.error(
            f"{route.failure}: request failed with status code: {response.status_code}"
            f" and respond with: {text}"
        )
        return
    for chunk, problem in length_prefixed_chunks(response.iter_bytes()):
        if problem is not None:
            answer.error(f"{route.stream_failure}: {problem}")
            return
        try:
            document = json.loads(chunk)
        except ValueError:
            document = None
        data = document.get("data") if isinstance(document, dict) else None
        decoded = go_answer(invoke_type, data) if data is not None else None
        if document is None or (decoded is not None and decoded.undecodable is not None):
            logger.warning("stream data not match: %s", chunk[:200])
            continue
        if envelope_problem := _envelope_problem(document):
            answer.error(f"{route.stream_failure}: {envelope_problem}")
            return
        assert decoded is not None
        if decoded.invalid is not None:
            answer.error(f"{route.stream_failure}: {decoded.invalid}")
            return
        answer.response_json("stream", decoded.text)


def length_prefixed_chunks(
    stream: Iterable[bytes], max_chunk: int = DEFAULT_MAX_CHUNK
) -> Iterator[tuple[bytes, str | None]]:
    """parser.LengthPrefixedChunking: per chunk a 4-byte system header (magic 0x0f, one spare
    byte, header length 10 as uint16 LE), a 10-byte header (data length as uint32 LE first),
    then the data. Yields each chunk's data, or a problem once and stops."""
    buffer = bytearray()
    pieces = iter(stream)

    def fill(size: int) -> bool:
        while len(buffer) < size:
            piece = next(pieces, None)
            if piece is None:
                return False
            buffer.extend(piece)
        return True

    while True:
        if not fill(4):
            if buffer:
                yield b"", "unexpected EOF\nfailed to read system header"
            return
        if buffer[0] != MAGIC_NUMBER:
            yield b"", f"magic number mismatch: {buffer[0]}"
            return
        (header_length,) = struct.unpack_from("<H", buffer, 2)
        if header_length != HEADER_LENGTH:
            yield b"", f"header length mismatch: {header_length}"
            return
        if not fill(4 + HEADER_LENGTH):
            yield b"", "unexpected EOF\nfailed to read header"
            return
        (length,) = struct.unpack_from("<I", buffer, 4)
        if length > max_chunk:
            yield b"", f"data length is too long: {length}"
            return
        if not fill(4 + HEADER_LENGTH + length):
            yield b"", "EOF\nfailed to read data"
            return
        start = 4 + HEADER_LENGTH
        yield bytes(buffer[start : start + length]), None
        del buffer[: start + length]


def length_prefixed(data: bytes) -> bytes:
    """One chunk framed as Dify's inner API frames it (for fakes of Dify in tests)."""
    return struct.pack("<BBHI6x", MAGIC_NUMBER, 0, HEADER_LENGTH, len(data)) + data
