"""A handler registered in Python answers a call in Dify's place.

Its answers carry the daemon's message for the invoke type ("stream" for the types Dify
streams, "struct" for the others), and its failures the daemon's prefixes: a failure of
the call itself is `invoke llm model failed: ...`, one while its answers are read
`read llm model failed: ...`, as when Dify fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from emulator.backwards._answers import ANSWER_TYPES, go_answer
from emulator.backwards._calls import Answer, BackwardsCall, Handler
from emulator.backwards._inner_api import Route


class HandlerMisuse(TypeError):
    """A handler returned or yielded what no answer can be made of."""


def run_handler(handler: Handler, call: BackwardsCall, route: Route | None, answer: Answer) -> None:
    message = "stream" if route is not None and route.streamed else "struct"
    try:
        answers = _answers(handler(call))
    except Exception as error:
        _fail(answer, route.failure if route else None, error)
        return
    prefix = (route.stream_failure or route.failure) if route else None
    try:
        for data in answers:
            if not _pass_on(call.invoke_type, message, data, answer, prefix):
                return
    except Exception as error:
        _fail(answer, prefix, error)


def _fail(answer: Answer, prefix: str | None, error: Exception) -> None:
    """The plugin gets the daemon's error either way; a misuse is also kept for the test."""
    if isinstance(error, HandlerMisuse):
        answer.record.handler_misuse = str(error)
    answer.error(_failure(prefix, error))


def _pass_on(invoke_type: str, message: str, data: Any, answer: Answer, prefix: str | None) -> bool:
    """Send one answer as the daemon would re-encode Dify's; False once the call failed."""
    if invoke_type not in ANSWER_TYPES:  # storage: the daemon's own map
        answer.response(message, data)
        return True
    decoded = go_answer(invoke_type, data)
    problem = decoded.undecodable or decoded.invalid
    if problem is not None:
        answer.error(f"{prefix}: {problem}" if prefix else problem)
        return False
    answer.response_json(message, decoded.text)
    return True


def _failure(prefix: str | None, error: Exception) -> str:
    text = str(error) or type(error).__name__
    return f"{prefix}: {text}" if prefix else text


def _answers(result: Any) -> Iterable[Any]:
    """The answers a handler's result stands for; a result that is none of them fails now."""
    if result is None:
        return []
    if isinstance(result, bytes | bytearray):
        return [{"data": bytes(result).hex()}]
    if isinstance(result, Mapping):
        return [_plain(result)]
    if isinstance(result, Iterable) and not isinstance(result, str):
        return _each_answer(result)
    raise HandlerMisuse(
        f"a handler returns a mapping, bytes, an iterable of mappings or None, not {result!r}"
    )


def _each_answer(results: Iterable[Any]) -> Iterator[Any]:
    for item in results:
        if not isinstance(item, Mapping):
            raise HandlerMisuse(f"a handler's answers are mappings, not {item!r}")
        yield _plain(item)


def _plain(value: Mapping[str, Any]) -> Any:
    """What the plugin will read: the value through JSON (so it must be JSON-able)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise HandlerMisuse(f"a handler's answer is not JSON: {error}") from None
