"""Calls back into Dify (backwards invocations), answered the way the daemon answers them.

A plugin asks Dify for a model, tool, app or its storage through its session: the SDK sends
an `invoke` session message `{type, backwards_request_id, request}` and waits for
`backwards_response` lines. The daemon (internal/core/io_tunnel/backwards_invocation/task.go)
refuses such calls from model sessions, checks the permissions the plugin's manifest
declares, serves `storage` from its own persistence and forwards everything else to Dify's
inner API. Each answer goes back as `response` events, then `end`; a failure as `error`,
then `end`.

The emulator answers a call, in this order, from: a handler registered in Python for its
invoke type; for `storage`, its own in-memory store (as the daemon serves storage itself);
Dify's inner API, when `DIFY_INNER_API_URL` is set; otherwise a refusal, worded as the
daemon words a call Dify did not answer.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, overload

from emulator.backwards._calls import (
    ANSWERERS,
    Answer,
    BackwardsCall,
    Caller,
    CallRecord,
    Handler,
    Send,
    go_format,
    response_line,
    session_traceparent,
)
from emulator.backwards._handlers import run_handler
from emulator.backwards._inner_api import (
    FORWARDED,
    BackwardsSettings,
    forward,
    inner_api_url,
    length_prefixed,
    length_prefixed_chunks,
)
from emulator.backwards._permissions import PERMISSIONS, declared_permission, permission_denial
from emulator.backwards._requests import go_request
from emulator.backwards._storage import MemoryStorage
from emulator.contract.gojson import compact

__all__ = [
    "ANSWERERS",
    "Backwards",
    "BackwardsCall",
    "BackwardsSettings",
    "CallRecord",
    "Caller",
    "Handler",
    "MemoryStorage",
    "Send",
    "declared_permission",
    "go_format",
    "inner_api_url",
    "length_prefixed",
    "length_prefixed_chunks",
    "permission_denial",
    "response_line",
    "session_traceparent",
]

logger = logging.getLogger("emulator.backwards")


class Backwards:
    """Answers a plugin's calls back into Dify: handlers first, then storage, Dify, refusal."""

    def __init__(self, settings: BackwardsSettings | None = None) -> None:
        self.settings = BackwardsSettings.from_env() if settings is None else settings
        self.storage = MemoryStorage()
        self._handlers: dict[str, Handler] = {}

    @overload
    def handle(self, invoke_type: str, handler: Handler) -> Handler: ...

    @overload
    def handle(self, invoke_type: str) -> Callable[[Handler], Handler]: ...

    def handle(
        self, invoke_type: str, handler: Handler | None = None
    ) -> Handler | Callable[[Handler], Handler]:
        """Answer calls of `invoke_type` (`storage`, `llm`, `tool`, ...) with `handler`;
        without one, return a decorator that registers the function it decorates."""
        if invoke_type not in PERMISSIONS:
            known = ", ".join(sorted(PERMISSIONS))
            raise ValueError(f"unknown invoke type {invoke_type!r}; the daemon knows: {known}")
        if handler is None:
            return lambda decorated: self.handle(invoke_type, decorated)
        self._handlers[invoke_type] = handler
        return handler

    def clear(self) -> None:
        """Forget every handler and everything stored."""
        self._handlers.clear()
        self.storage.clear()

    def dispatch(self, data: Any, caller: Caller, send: Send) -> CallRecord | str:
        """Start answering one `invoke` message's `data` (as parsed by gojson).

        Returns the call's record, whose answer is written through `send` (now, or from a
        worker thread), or, for a message the daemon cannot read, the text it ends the HTTP
        stream with (`invoke dify failed: <text>`).
        """
        request = _invoke_request(data)
        if isinstance(request, str):
            return request
        invoke_type, request_id, detail = request
        record = CallRecord(invoke_type, request_id, detail)
        answer = Answer(caller, request_id, send, record)

        if caller.access_type == "model":
            record.answered_by = "refused"
            answer.fail(f"you can not invoke dify from {caller.access_type}")
            return record
        if denial := permission_denial(invoke_type, caller.plugin_directory):
            record.answered_by = "denied"
            answer.fail(denial)
            return record

        detail = {**detail, "tenant_id": caller.tenant_id, "user_id": caller.user_id}
        detail["type"] = invoke_type
        call = BackwardsCall(invoke_type, request_id, detail, caller)
        worker = threading.Thread(
            target=self._answer,
            args=(call, answer),
            name=f"backwards {invoke_type} {request_id}",
            daemon=True,
        )
        worker.start()
        return record

    def _answer(self, call: BackwardsCall, answer: Answer) -> None:
        try:
            self._answer_call(call, answer)
        except Exception as error:
            logger.exception("answering the %s call %s failed", call.invoke_type, call.request_id)
            answer.error(f"emulator: {type(error).__name__}: {error}")
        finally:
            answer.end()

    def _answer_call(self, call: BackwardsCall, answer: Answer) -> None:
        handler = self._handlers.get(call.invoke_type)
        route = FORWARDED.get(call.invoke_type)
        body = ""
        if route is not None:
            body, problem = go_request(call.invoke_type, call.request)
            if problem is not None:
                answer.record.answered_by = "invalid"
                answer.error(problem)
                return
            call = replace(call, request=json.loads(body))
        if handler is not None:
            answer.record.answered_by = "handler"
            run_handler(handler, call, route, answer)
        elif call.invoke_type == "storage":
            answer.record.answered_by = "storage"
            self.storage.answer(call, answer)
        elif route is not None and self.settings.inner_api_url:
            answer.record.answered_by = "forward"
            forward(self.settings, route, call, body, answer)
        else:
            answer.record.answered_by = "unanswered"
            prefix = route.failure if route is not None else "invoke dify failed"
            answer.error(
                f"{prefix}: emulator: nothing answers {call.invoke_type!r} calls: register"
                " a handler for it or set DIFY_INNER_API_URL"
            )


def _invoke_request(data: Any) -> tuple[str, str, dict[str, Any]] | str:
    """prepareDifyInvocationArguments: the message's type, request id and request."""
    if data is None:
        return "invoke request is empty"
    try:
        request = json.loads(compact(data))
    except (TypeError, ValueError) as error:
        return f"unmarshal invoke request failed: {error}"
    if not isinstance(request, dict):
        kind = _json_kind(request)
        return (
            f"unmarshal invoke request failed: json: cannot unmarshal {kind} into Go value"
            " of type map[string]interface {}"
        )
    invoke_type = request.get("type")
    if not isinstance(invoke_type, str):
        return f"invoke request missing type: {go_format(request, 's')}"
    request_id = request.get("backwards_request_id")
    if not isinstance(request_id, str):
        return f"invoke request missing request_id: {go_format(request, 's')}"
    detail = request.get("request")
    if not isinstance(detail, dict):
        return f"invoke request missing request: {go_format(request, 's')}"
    return invoke_type, request_id, detail


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"
