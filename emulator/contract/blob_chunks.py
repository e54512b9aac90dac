"""How the daemon joins an agent strategy's `blob_chunk` items into one `blob` item.

Mirrors internal/core/io_tunnel/agent_service.go (InvokeAgentStrategy): a chunk whose message
lacks a string `id`, a number `total_length`, a string `blob` or a boolean `end` is dropped
without a word; the other chunks are decoded and buffered per id; an `end` chunk (whose own
`blob` is never read) emits everything buffered so far for its id, with the end chunk's
meta, and leaves the buffer in place. Tool invocations pass chunks through untouched.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_CHUNK_BYTES = 8192
MAX_FILE_BYTES = 15 * 1024 * 1024
MAX_ALLOC = 1 << 48
"""The largest capacity Go's make accepts on linux/amd64; beyond it make panics."""

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SIXBITS = {byte: index for index, byte in enumerate(_ALPHABET)}
_NEWLINES = b"\r\n"
_PAD = ord("=")
_CANONICAL = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
"""Base64 Go and Python decode alike; anything else takes the symbol-by-symbol path."""


@dataclass(frozen=True)
class Joined:
    """The whole file so far: a `blob` item to emit."""

    blob: bytes
    meta: dict[str, Any] | None


@dataclass(frozen=True)
class Refused:
    """A stream error with a plain-text message."""

    message: str


@dataclass(frozen=True)
class Panicked:
    """Go's make panicked on the chunk's total_length: the routine recovers and the stream
    ends as if the plugin had ended it."""


class BlobAssembler:
    """The buffers of one session, by blob id."""

    def __init__(self) -> None:
        self._files: dict[str, bytearray] = {}

    def take(
        self, message: dict[str, Any] | None, meta: dict[str, Any] | None
    ) -> Joined | Refused | Panicked | None:
        """One `blob_chunk` item's message; None when it is buffered or dropped."""
        fields = _chunk_fields(message)
        if fields is None:
            return None
        blob_id, total_length, blob, end = fields

        if blob_id not in self._files:
            if not 0 <= _go_int(total_length) <= MAX_ALLOC:
                return Panicked()
            self._files[blob_id] = bytearray()
        buffer = self._files[blob_id]
        if end:
            return Joined(bytes(buffer), meta)

        if len(buffer) > MAX_FILE_BYTES:
            del self._files[blob_id]
            return Refused("file is too large")
        decoded, error = go_base64_decode(blob)
        if error is not None:
            return Refused(error)
        if len(decoded) > MAX_CHUNK_BYTES:
            return Refused("single file chunk is too large")
        buffer.extend(decoded)
        return None


def _chunk_fields(message: dict[str, Any] | None) -> tuple[str, float, str, bool] | None:
    """The four members Go type-asserts, or None where one assertion fails."""
    if message is None:
        return None
    blob_id, total_length = message.get("id"), message.get("total_length")
    blob, end = message.get("blob"), message.get("end")
    if not isinstance(blob_id, str) or not isinstance(total_length, float):
        return None
    if not isinstance(blob, str) or not isinstance(end, bool):
        return None
    return blob_id, total_length, blob, end


def _go_int(number: float) -> int:
    """Go's int(float64) on amd64: truncated, and the minimum int64 when out of range."""
    if not -(2.0**63) <= number < 2.0**63:
        return -(2**63)
    return math.trunc(number)


def go_base64_decode(text: str) -> tuple[bytes, str | None]:
    """base64.StdEncoding.DecodeString: newlines skipped, padding required, and Go's error
    text (`illegal base64 data at input byte N`) where it stops."""
    source = text.encode()
    if _CANONICAL.fullmatch(source):
        return binascii.a2b_base64(source), None
    decoded = bytearray()
    position = 0
    while position < len(source):
        position, quantum, error_at = _quantum(source, position)
        decoded.extend(quantum)
        if error_at is not None:
            return bytes(decoded), f"illegal base64 data at input byte {error_at}"
    return bytes(decoded), None


def _quantum(source: bytes, position: int) -> tuple[int, bytes, int | None]:
    """One group of four symbols: where the next starts, its bytes, and an error offset."""
    symbols: list[int] = []
    while len(symbols) < 4:
        if position == len(source):
            if symbols:
                return position, b"", position - len(symbols)
            return position, b"", None
        byte = source[position]
        position += 1
        if byte in _SIXBITS:
            symbols.append(_SIXBITS[byte])
        elif byte in _NEWLINES:
            continue
        elif byte != _PAD or len(symbols) < 2:
            return position, b"", position - 1
        else:
            return _padded(source, position, symbols)
    return position, _bytes_of(symbols), None


def _padded(source: bytes, position: int, symbols: list[int]) -> tuple[int, bytes, int | None]:
    """The end of the input after a `=`: a second `=` after two symbols, then only newlines."""
    if len(symbols) == 2:
        position = _skip_newlines(source, position)
        if position == len(source):
            return position, b"", len(source)
        if source[position] != _PAD:
            return position, b"", position - 1
        position += 1
    position = _skip_newlines(source, position)
    error_at = position if position < len(source) else None
    return position, _bytes_of(symbols), error_at


def _skip_newlines(source: bytes, position: int) -> int:
    while position < len(source) and source[position] in _NEWLINES:
        position += 1
    return position


def _bytes_of(symbols: list[int]) -> bytes:
    value = 0
    for index, symbol in enumerate(symbols):
        value |= symbol << (18 - 6 * index)
    return value.to_bytes(3, "big")[: len(symbols) - 1]


def standard_base64(blob: bytes) -> str:
    """How Go's json.Marshal writes a []byte."""
    return base64.b64encode(blob).decode()
