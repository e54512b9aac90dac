"""How Dify's API server reads the daemon's answers (api/core/plugin/impl/base.py), for tests.

Reimplemented from ../shared/reference/dify-client.md §1.3 and §1.5: each non-empty line, a
leading `data:` dropped, is an envelope; code -500 decodes `message` as a daemon error, and a
PluginInvokeError decodes its inner message once more into the plugin's own error type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class DaemonError(Exception):
    """What Dify raises for a -500 item: the daemon's error type, or the plugin's."""

    error_type: str
    message: str
    code: int = -500


def envelopes(body: str | bytes) -> list[dict[str, Any]]:
    """Every envelope of a stream or plain JSON body, as Dify splits it."""
    text = body.decode() if isinstance(body, bytes) else body
    found = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("data:"):
            line = line[5:].strip()
        if line:
            found.append(json.loads(line))
    return found


def items(body: str | bytes) -> Iterable[Any]:
    """The data of each success item; raises DaemonError as Dify does at the first error."""
    for envelope in envelopes(body):
        if envelope["code"] == 0:
            yield envelope["data"]
            continue
        if envelope["code"] != -500:
            raise ValueError(f"plugin daemon: {envelope['message']}, code: {envelope['code']}")
        error = json.loads(envelope["message"])
        if error["error_type"] == "PluginInvokeError":
            inner = json.loads(error["message"])
            raise DaemonError(inner["error_type"], inner["message"])
        raise DaemonError(error["error_type"], error["message"])


def collect(body: str | bytes) -> tuple[list[Any], DaemonError | None]:
    """The items before the first error, and that error (None when the stream ended cleanly)."""
    received: list[Any] = []
    try:
        for item in items(body):
            received.append(item)
    except DaemonError as error:
        return received, error
    return received, None
