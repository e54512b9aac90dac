"""A handler registered in Python answers a call in Dify's place."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from emulator.backwards._calls import Answer, BackwardsCall, Handler
from emulator.backwards._inner_api import Route


def run_handler(handler: Handler, call: BackwardsCall, route: Route | None, answer: Answer) -> None:
    prefix = route.failure if route is not None else None
    try:
        result = handler(call)
        for message, data in _replies(result):
            answer.response(message, data)
    except Exception as error:
        text = f"{type(error).__name__}: {error}" if not str(error) else str(error)
        answer.error(f"{prefix}: {text}" if prefix else text)


def _replies(result: Any) -> Iterator[tuple[str, Any]]:
    if result is None:
        return
    if isinstance(result, bytes | bytearray):
        yield "struct", {"data": bytes(result).hex()}
    elif isinstance(result, Mapping):
        yield "struct", _plain(result)
    elif isinstance(result, Iterable) and not isinstance(result, str):
        for item in result:
            if not isinstance(item, Mapping):
                raise TypeError(f"a handler's stream yields mappings, not {item!r}")
            yield "stream", _plain(item)
    else:
        raise TypeError(
            f"a handler returns a mapping, bytes, an iterable of mappings or None, not {result!r}"
        )


def _plain(value: Mapping[str, Any]) -> Any:
    """What the plugin will read: the value through JSON (so it must be JSON-able)."""
    return json.loads(json.dumps(value))
