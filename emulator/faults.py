"""Faults the server injects for resilience tests, per route and plugin.

Each fault makes the emulator answer as the daemon does in a bad situation, in the daemon's
own envelopes: no node has the plugin's runtime, a daemon error before the stream, a plugin
error inside it, the `killed by timeout` item, a slow first item, slow items, or a stream
cut off mid-way. Rules hold until cleared, or for the next `times` dispatches they match.

Answers come where the daemon's check order (daemon-contract §2.3) puts them: `NoNode` after
the plugin's installation is found (step 4), `ErrorAnswer` where the session is created, after
the body's validation (step 6). A rule that names its plugin stands in for that plugin's
installation, so it answers even for a plugin the emulator has not loaded. A fault that ends
or cuts a stream "after n items" does so at the end of a shorter stream too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeGuard

from emulator.contract import envelopes
from emulator.contract.envelopes import CODES, TIMEOUT_MESSAGE, ErrorType
from emulator.contract.routes import ROUTES

NO_NODE_MESSAGE = "no available node, plugin runtime not found"
MAX_ERROR_ARGS = 10
"""The daemon ignores a plugin error whose args hold more keys (its validator's max=10)."""


class FaultError(ValueError):
    """A fault that cannot be set; the message says which part and why."""


@dataclass(frozen=True)
class NoNode:
    """HTTP 404 with code -500: the daemon's cluster has no node running the plugin
    (RedirectPluginInvoke). Answered after the installation check, before the body is read."""

    kind: ClassVar[str] = "no_node"
    stream_only: ClassVar[bool] = False
    step: ClassVar[str] = "node"


@dataclass(frozen=True)
class ErrorAnswer:
    """A daemon error answered as plain JSON instead of the stream, where the daemon creates
    the session, e.g. 500 `failed to get plugin runtime`: after the plugin lookup and the
    body's validation, so a body the daemon refuses still gets its 400 first."""

    error_type: str
    message: str
    status: int = 500
    kind: ClassVar[str] = "error_answer"
    stream_only: ClassVar[bool] = False
    step: ClassVar[str] = "session"

    def __post_init__(self) -> None:
        if not isinstance(self.error_type, str) or self.error_type not in CODES:
            known = ", ".join(CODES)
            raise FaultError(f"error_type: expected one of {known}, got {self.error_type!r}")
        _check_text("message", self.message)
        # The daemon answers its errors with 4xx and 5xx; a 1xx, 204 or 304 could not even
        # carry the envelope.
        status = self.status
        if not _is_int(status) or not 400 <= status <= 599:
            raise FaultError(
                f"status: expected an HTTP error status from 400 to 599, got {status!r}"
            )


@dataclass(frozen=True)
class PluginErrorItem:
    """After `after_items` items, the stream ends with the item the daemon makes of a plugin's
    error (PluginInvokeError around the plugin's sorted error JSON). Polling routes answer it
    as HTTP 500, as the daemon does."""

    error_type: str
    message: str
    args: dict[str, Any] | None = None
    after_items: int = 0
    kind: ClassVar[str] = "plugin_error_item"
    stream_only: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # The daemon only passes on a plugin error that decodes as its ErrorResponse: two
        # strings and an object (pkg/entities/plugin_entities/event.go); it ignores the others.
        _check_text("error_type", self.error_type)
        _check_text("message", self.message)
        _check_error_args(self.args)
        _check_count("after_items", self.after_items, minimum=0)


@dataclass(frozen=True)
class TimeoutItem:
    """After `after_items` items, the stream ends with the daemon's `killed by timeout` item,
    as when PLUGIN_MAX_EXECUTION_TIMEOUT runs out."""

    after_items: int = 0
    kind: ClassVar[str] = "timeout_item"
    stream_only: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_count("after_items", self.after_items, minimum=0)


@dataclass(frozen=True)
class DelayFirstItem:
    """Hold the first item (and so, as gin does, the status and headers) for `seconds`."""

    seconds: float
    kind: ClassVar[str] = "delay_first_item"
    stream_only: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_seconds(self.seconds)


@dataclass(frozen=True)
class DelayBetweenItems:
    """Hold every item after the first for `seconds`."""

    seconds: float
    kind: ClassVar[str] = "delay_between_items"
    stream_only: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_seconds(self.seconds)


@dataclass(frozen=True)
class CutAfter:
    """Close the connection after `items` items, without ending the chunked body: the client
    sees the items, then a protocol error, as when the daemon dies mid-stream."""

    items: int
    kind: ClassVar[str] = "cut_after"
    stream_only: ClassVar[bool] = True

    def __post_init__(self) -> None:
        # uvicorn answers 500 itself when an app sends nothing, so a cut needs one item.
        _check_count("items", self.items, minimum=1)


Fault = (
    NoNode
    | ErrorAnswer
    | PluginErrorItem
    | TimeoutItem
    | DelayFirstItem
    | DelayBetweenItems
    | CutAfter
)
FAULT_KINDS: dict[str, type[Fault]] = {
    kind.kind: kind
    for kind in (
        NoNode,
        ErrorAnswer,
        PluginErrorItem,
        TimeoutItem,
        DelayFirstItem,
        DelayBetweenItems,
        CutAfter,
    )
}
_STREAMED = {route.path: route.streamed for route in ROUTES}


def fault_from_json(document: Mapping[str, Any]) -> Fault:
    """Build a fault from `{"kind": ..., <its fields>}`; raise FaultError if it is not one."""
    if not isinstance(document, Mapping):
        raise FaultError(f"fault: expected an object with a kind, got {document!r}")
    fields = dict(document)
    kind = fields.pop("kind", None)
    if kind not in FAULT_KINDS:
        raise FaultError(f"kind: expected one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    try:
        return FAULT_KINDS[kind](**fields)
    except TypeError as error:
        raise FaultError(f"{kind}: {error}") from None


def fault_to_json(fault: Fault) -> dict[str, Any]:
    return {"kind": fault.kind, **dataclasses.asdict(fault)}


@dataclass
class FaultRule:
    """A fault, where it applies (None: everywhere), and how many more times (None: always)."""

    id: int
    fault: Fault
    route: str | None = None
    plugin_id: str | None = None
    times: int | None = None

    def matches(self, route: str, plugin_id: str) -> bool:
        return self.route in (None, route) and self.plugin_id in (None, plugin_id)

    def describe(self) -> str:
        return f"{self.fault.kind} (rule {self.id})"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": fault_to_json(self.fault),
            "route": self.route,
            "plugin_id": self.plugin_id,
            "times": self.times,
        }


@dataclass(frozen=True)
class Answer:
    """A plain JSON answer that replaces the dispatch."""

    status: int
    body: str
    applied: str


@dataclass(frozen=True)
class StreamPlan:
    """How the faults that matched shape one dispatch's answer."""

    first_item_delay: float = 0.0
    item_delay: float = 0.0
    cut_after: int | None = None
    """Drop the connection after this many items, or at the end of a shorter stream."""
    ending: tuple[int, str] | None = None
    """After this many items, or in place of the end of a shorter stream, this error envelope
    ends the answer."""
    rules: Mapping[str, str] = field(default_factory=dict)
    """The rule behind each setting above, by the setting's name (later rules win): the journal
    lists it once the setting takes effect."""


class Faults:
    """The fault rules the server consults on each dispatch; safe to change from any thread."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def add(
        self,
        fault: Fault,
        *,
        route: str | None = None,
        plugin_id: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Inject `fault` into dispatches to `route` for `plugin_id` (None: any)."""
        _check_target(fault, route, times, plugin_id)
        with self._lock:
            rule = FaultRule(self._next_id, fault, route, plugin_id, times)
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: int) -> bool:
        """Remove one rule; return whether it was there."""
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != rule_id]
            removed = len(kept) != len(self._rules)
            self._rules = kept
        return removed

    def clear(self) -> None:
        """Remove every rule; ids start again at 1."""
        with self._lock:
            self._rules.clear()
            self._next_id = 1

    def installs(self, route: str, plugin_id: str) -> bool:
        """Whether an answer fault for this route names this plugin: it stands in for the
        plugin's installation, so the daemon would get past its 404 to the fault."""
        with self._lock:
            return any(
                isinstance(rule.fault, NoNode | ErrorAnswer)
                and rule.plugin_id == plugin_id
                and rule.route in (None, route)
                for rule in self._rules
            )

    def answer_for(self, route: str, plugin_id: str, step: str) -> Answer | None:
        """The first answer fault at this step of the daemon's checks ("node" or "session")
        that matches, used up by one dispatch; None if there is none."""
        with self._lock:
            for rule in self._rules:
                fault = rule.fault
                if (
                    isinstance(fault, NoNode | ErrorAnswer)
                    and fault.step == step
                    and rule.matches(route, plugin_id)
                ):
                    self._use(rule)
                    return _answer(rule)
        return None

    def stream_plan(self, route: str, plugin_id: str) -> StreamPlan:
        """Every stream fault that matches, used up by one dispatch; later rules win."""
        plan = StreamPlan()
        streamed = _STREAMED.get(route, True)
        with self._lock:
            for rule in list(self._rules):
                fault = rule.fault
                if isinstance(fault, NoNode | ErrorAnswer) or not rule.matches(route, plugin_id):
                    continue
                if fault.stream_only and not streamed:
                    continue
                self._use(rule)
                plan = _with_fault(plan, fault, rule.describe())
        return plan

    def _use(self, rule: FaultRule) -> None:
        if rule.times is None:
            return
        rule.times -= 1
        if rule.times == 0:
            self._rules.remove(rule)


def _answer(rule: FaultRule) -> Answer:
    fault = rule.fault
    if isinstance(fault, ErrorAnswer):
        body = envelopes.error(ErrorType(fault.error_type), fault.message)
        return Answer(fault.status, body, rule.describe())
    # internal/server/middleware.go RedirectPluginInvoke: 404, but the InternalServer envelope.
    return Answer(404, envelopes.error(ErrorType.INTERNAL, NO_NODE_MESSAGE), rule.describe())


def _with_fault(plan: StreamPlan, fault: Fault, applied: str) -> StreamPlan:
    changes: dict[str, Any] = {}
    match fault:
        case DelayFirstItem(seconds=seconds):
            changes["first_item_delay"] = seconds
        case DelayBetweenItems(seconds=seconds):
            changes["item_delay"] = seconds
        case CutAfter(items=items):
            changes["cut_after"] = items
        case TimeoutItem(after_items=after):
            changes["ending"] = (after, envelopes.error(ErrorType.INTERNAL, TIMEOUT_MESSAGE))
        case PluginErrorItem(error_type=error_type, message=message, args=args, after_items=n):
            changes["ending"] = (n, envelopes.plugin_error(error_type, message, args))
    rules = {**plan.rules, **dict.fromkeys(changes, applied)}
    return dataclasses.replace(plan, **changes, rules=rules)


def _check_target(
    fault: Fault, route: str | None, times: int | None, plugin_id: str | None = None
) -> None:
    if route is not None and (not isinstance(route, str) or route not in _STREAMED):
        raise FaultError(f"route: expected one of {', '.join(_STREAMED)}, got {route!r}")
    if route is not None and fault.stream_only and not _STREAMED[route]:
        raise FaultError(f"{fault.kind}: {route} answers plain JSON, not a stream")
    if plugin_id is not None and (not isinstance(plugin_id, str) or not plugin_id):
        raise FaultError(f"plugin_id: expected a plugin id string, got {plugin_id!r}")
    if times is not None:
        _check_count("times", times, minimum=1)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_count(name: str, value: object, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise FaultError(f"{name}: expected an integer of at least {minimum}, got {value!r}")


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_seconds(value: object) -> None:
    if not _is_number(value) or value < 0:
        raise FaultError(f"seconds: expected a non-negative number, got {value!r}")
    if not math.isfinite(value):
        raise FaultError(f"seconds: expected a finite number, got {value!r}")


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise FaultError(f"{name}: expected a string, got {value!r}")


def _check_error_args(args: object) -> None:
    """What the daemon decodes a plugin's error args as: an object of at most 10 keys, or null."""
    if args is None:
        return
    if not isinstance(args, dict):
        raise FaultError(f"args: expected an object or null, got {args!r}")
    if len(args) > MAX_ERROR_ARGS:
        raise FaultError(
            f"args: expected an object of at most {MAX_ERROR_ARGS} keys or null, got"
            f" {len(args)} keys (the daemon ignores such an error and the stream runs into its"
            " timeout)"
        )
    for key in args:
        if not isinstance(key, str):
            raise FaultError(f"args: expected string keys, got {key!r}")
    try:
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise FaultError(f"args: expected JSON values: {error}") from None
