"""A bounded record of dispatches: what arrived, what the plugin saw, what went back.

The server opens one `Dispatch` per request to a dispatch route and fills it in as the
request travels: the bound wrapper and data, the contract warnings, the line handed to the
plugin, the session the SDK built from it, each item of the answer, and the timings. The
journal keeps the newest `cap` dispatches; older ones are dropped and counted. Each dispatch
keeps its first `item_cap` items and `warning_cap` warnings, and counts the rest. Secret header
values are redacted before they are stored.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from emulator.contract.findings import ContractWarning
from emulator.contract.gojson import encode_any

if TYPE_CHECKING:
    from emulator.backwards import CallRecord

DEFAULT_CAP = 1000
DEFAULT_ITEM_CAP = 1000
"""Items kept per dispatch: an endless stream must not fill memory either."""
DEFAULT_WARNING_CAP = 100
"""Warnings kept per dispatch: a body with thousands of unknown keys must not fill memory."""
REDACTED = "[redacted]"
SECRET_HEADERS = frozenset(
    {
        "x-api-key",
        "x-admin-api-key",
        "x-inner-api-key",
        "authorization",
        "proxy-authorization",
        "cookie",
    }
)


class _AnyValue:
    def __repr__(self) -> str:
        return "ANY"


ANY: Final[Any] = _AnyValue()
"""Matches every value; `None` is a value (an app_id that was not sent)."""


@dataclass(frozen=True, slots=True)
class SessionSeen:
    """The session the SDK built for a dispatch: what `get_current_session()` returned."""

    session_id: str
    app_id: str | None
    conversation_id: str | None
    message_id: str | None
    endpoint_id: str | None
    user_id: str | None
    context: dict[str, Any]


class Dispatch:
    """One request to a dispatch route, filled in by the server as it travels."""

    __slots__ = (
        "_bound",
        "_on_end",
        "_started",
        "backwards",
        "client_gone",
        "ended_after",
        "error",
        "faults",
        "first_item_after",
        "headers",
        "item_cap",
        "items",
        "items_dropped",
        "number",
        "plugin_id",
        "received_at",
        "request_line",
        "route",
        "session",
        "status",
        "streamed",
        "tenant_id",
        "warning_cap",
        "warnings",
        "warnings_dropped",
    )

    def __init__(
        self,
        number: int,
        route: str,
        tenant_id: str,
        plugin_id: str,
        headers: Iterable[tuple[str, str]],
        item_cap: int = DEFAULT_ITEM_CAP,
        on_end: Callable[[Dispatch], None] | None = None,
        warning_cap: int = DEFAULT_WARNING_CAP,
    ) -> None:
        self.number = number
        self.route = route
        self.tenant_id = tenant_id
        self.plugin_id = plugin_id
        self.headers = tuple(_redacted(name, value) for name, value in headers)
        self.received_at = time.time()
        self.warnings: list[ContractWarning] = []
        self.warnings_dropped = 0
        self.warning_cap = warning_cap
        self.request_line: str | None = None
        self.session: SessionSeen | None = None
        self.status: int | None = None
        self.streamed = False
        self.items: list[str] = []
        self.items_dropped = 0
        self.item_cap = item_cap
        self.error: str | None = None
        self.backwards: list[CallRecord] = []
        self.faults: list[str] = []
        self.client_gone = False
        self.first_item_after: float | None = None
        self.ended_after: float | None = None
        self._bound: dict[str, Any] | None = None
        self._started = time.monotonic()
        self._on_end = on_end

    @property
    def wrapper(self) -> dict[str, Any] | None:
        """The bound wrapper without `data`, as plain JSON values; None before binding."""
        if self._bound is None:
            return None
        return _plain({name: value for name, value in self._bound.items() if name != "data"})

    @property
    def data(self) -> dict[str, Any] | None:
        """The bound `data`, as plain JSON values; None before binding."""
        return None if self._bound is None else _plain(self._bound["data"])

    @property
    def app_id(self) -> str | None:
        """The app_id the daemon forwards (after Go's binding), None when absent or unbound."""
        return None if self._bound is None else self._bound["app_id"]

    @property
    def ended(self) -> bool:
        return self.ended_after is not None

    def envelopes(self) -> list[dict[str, Any]]:
        """Each item of the answer, decoded."""
        return [json.loads(item) for item in list(self.items)]

    def record_binding(self, values: dict[str, Any], warnings: list[ContractWarning]) -> None:
        """Keep the bound values and the binding's warnings (up to the cap)."""
        self._bound = values
        self.add_warnings(warnings)

    def add_warnings(self, warnings: list[ContractWarning]) -> None:
        """Keep more warnings, up to the cap; count the ones past it."""
        room = max(self.warning_cap - len(self.warnings), 0)
        self.warnings.extend(warnings[:room])
        self.warnings_dropped += max(len(warnings) - room, 0)

    def record_session(self, fields: dict[str, Any]) -> None:
        """Called from the plugin's thread with the session the SDK built."""
        self.session = SessionSeen(**fields)

    def record_backwards(self, call: CallRecord) -> None:
        """Keep a call back into Dify (up to the item cap); it is filled in as it runs."""
        if len(self.backwards) < self.item_cap:
            self.backwards.append(call)

    def record_item(self, envelope: str, is_error: bool = False) -> None:
        if self.first_item_after is None:
            self.first_item_after = time.monotonic() - self._started
        if len(self.items) < self.item_cap:
            self.items.append(envelope)
        else:
            self.items_dropped += 1
        if is_error:
            self.error = envelope

    def record_answer(self, status: int, body: str) -> None:
        """A plain JSON answer: its one envelope is the only item."""
        self.status = status
        self.record_item(body, is_error=status >= 400)
        self.record_end()

    def record_end(self, client_gone: bool = False) -> None:
        if self.ended_after is not None:
            return
        self.client_gone = client_gone
        self.ended_after = time.monotonic() - self._started
        if self._on_end is not None:
            self._on_end(self)

    def to_json(self) -> dict[str, Any]:
        """The dispatch as JSON values, as `GET /_emulator/journal` lists it."""
        return {
            "number": self.number,
            "route": self.route,
            "tenant_id": self.tenant_id,
            "plugin_id": self.plugin_id,
            "headers": [list(pair) for pair in self.headers],
            "received_at": self.received_at,
            "wrapper": self.wrapper,
            "data": self.data,
            "warnings": [_warning_json(warning) for warning in list(self.warnings)],
            "warnings_dropped": self.warnings_dropped,
            "request_line": self.request_line,
            "session": None if self.session is None else asdict(self.session),
            "status": self.status,
            "streamed": self.streamed,
            "items": list(self.items),
            "items_dropped": self.items_dropped,
            "error": self.error,
            "backwards": [call.to_json() for call in list(self.backwards)],
            "faults": list(self.faults),
            "client_gone": self.client_gone,
            "timings": {"first_item": self.first_item_after, "end": self.ended_after},
        }

    def __repr__(self) -> str:
        return (
            f"<Dispatch #{self.number} {self.route} plugin={self.plugin_id}"
            f" app_id={self.app_id!r} status={self.status} items={len(self.items)}>"
        )


class Journal:
    """The newest `cap` dispatches, safe to read from any thread while the server writes."""

    def __init__(
        self,
        cap: int = DEFAULT_CAP,
        item_cap: int = DEFAULT_ITEM_CAP,
        warning_cap: int = DEFAULT_WARNING_CAP,
    ) -> None:
        if min(cap, item_cap, warning_cap) < 1:
            raise ValueError(
                f"journal caps must be at least 1, not {cap}, {item_cap} and {warning_cap}"
            )
        self.cap = cap
        self.item_cap = item_cap
        self.warning_cap = warning_cap
        self.dropped = 0
        self._dispatches: deque[Dispatch] = deque()
        self._numbered = 0
        self._open = 0
        self._changed = threading.Condition()

    def open(
        self, route: str, tenant_id: str, plugin_id: str, headers: Iterable[tuple[str, str]]
    ) -> Dispatch:
        """Start recording a dispatch; the oldest one leaves when the journal is full."""
        with self._changed:
            self._numbered += 1
            dispatch = Dispatch(
                self._numbered,
                route,
                tenant_id,
                plugin_id,
                headers,
                self.item_cap,
                self._ended,
                self.warning_cap,
            )
            self._dispatches.append(dispatch)
            if len(self._dispatches) > self.cap:
                self._dispatches.popleft()
                self.dropped += 1
            self._open += 1
        return dispatch

    def dispatches(
        self, route: str | None = None, plugin_id: str | None = None, app_id: Any = ANY
    ) -> list[Dispatch]:
        """Return the recorded dispatches that match, oldest first. `app_id=None` matches the
        dispatches the daemon forwards a null app_id for: absent, null, or never read."""
        with self._changed:
            recorded = list(self._dispatches)
        return [
            dispatch
            for dispatch in recorded
            if route in (None, dispatch.route)
            and plugin_id in (None, dispatch.plugin_id)
            and (app_id is ANY or dispatch.app_id == app_id)
        ]

    @property
    def total(self) -> int:
        """Dispatches opened since the last clear, dropped ones included."""
        return self._numbered

    def clear(self) -> None:
        """Forget every dispatch and the drop count; numbering starts again at 1."""
        with self._changed:
            self._dispatches.clear()
            self.dropped = 0
            self._numbered = 0

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until no dispatch is in flight; return whether that happened in time."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)

    def to_json(self, dispatches: Iterable[Dispatch] | None = None) -> dict[str, Any]:
        chosen = self.dispatches() if dispatches is None else dispatches
        return {
            "cap": self.cap,
            "total": self.total,
            "dropped": self.dropped,
            "dispatches": [dispatch.to_json() for dispatch in chosen],
        }

    def __len__(self) -> int:
        return len(self._dispatches)

    def __iter__(self) -> Iterator[Dispatch]:
        return iter(self.dispatches())

    def _ended(self, dispatch: Dispatch) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()


def _redacted(name: str, value: str) -> tuple[str, str]:
    return (name, REDACTED) if name.lower() in SECRET_HEADERS else (name, value)


def _plain(value: Any) -> Any:
    """Go-shaped bound values (decimals, raw messages, Go maps) as plain JSON values."""
    return json.loads(encode_any(value))


def _warning_json(warning: ContractWarning) -> dict[str, str]:
    return {
        "kind": str(warning.kind),
        "path": warning.path,
        "expected": warning.expected,
        "actual": warning.actual,
        "effect": warning.effect,
        "text": str(warning),
    }
