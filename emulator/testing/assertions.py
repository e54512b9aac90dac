"""Checks on the journal that read as sentences, and fail with the closest dispatches.

    assert_dispatched(daemon_emulator, "llm/invoke", app_id="app-9f3c")
    assert_never_dispatched(daemon_emulator, "rerank/invoke")
    assert_plugin_saw(daemon_emulator, app_id="app-9f3c", user_id="user-7b21")
    assert_called_back(daemon_emulator, "storage", answered_by="handler")

Each takes the fixture's emulator (or a `Journal`) and raises `JournalAssertionError`, an
AssertionError whose message names what was expected and lists the recorded dispatches that
came closest, with what differs in each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from emulator.backwards import ANSWERERS
from emulator.journal import ANY, Dispatch, Journal, SessionSeen

if TYPE_CHECKING:
    from emulator.backwards import CallRecord

CLOSEST_SHOWN = 3
SESSION_FIELDS = tuple(field.name for field in fields(SessionSeen))


class JournalAssertionError(AssertionError):
    """What the journal holds is not what the test expected."""


class HasJournal(Protocol):
    @property
    def journal(self) -> Journal: ...


JournalSource = Journal | HasJournal


@dataclass(frozen=True)
class _Criterion:
    """One thing a dispatch must have: its name, the value wanted, how to read it."""

    name: str
    expected: Any
    read: Callable[[Dispatch], Any]

    def mismatch(self, dispatch: Dispatch) -> str | None:
        found = self.read(dispatch)
        if found == self.expected:
            return None
        return f"{self.name} is {found!r}, not {self.expected!r}"


@overload
def assert_dispatched(  # type: ignore[overload-overlap]
    source: JournalSource,
    route: str | None = None,
    *,
    plugin_id: str | None = None,
    app_id: Any = ANY,
    times: Literal[0],
) -> None: ...


@overload
def assert_dispatched(
    source: JournalSource,
    route: str | None = None,
    *,
    plugin_id: str | None = None,
    app_id: Any = ANY,
    times: int | None = None,
) -> Dispatch: ...


def assert_dispatched(
    source: JournalSource,
    route: str | None = None,
    *,
    plugin_id: str | None = None,
    app_id: Any = ANY,
    times: int | None = None,
) -> Dispatch | None:
    """Assert that a dispatch to `route` (with this plugin and app_id) was recorded; `times`
    asks for exactly that many (0: none, as `assert_never_dispatched` asks). Return the last
    one that matches, or None when `times` is 0."""
    __tracebackhide__ = True
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
        raise ValueError(f"times: expected a count of 0 or more, got {times!r}")
    criteria = _dispatch_criteria(route, plugin_id, app_id)
    wanted = _expected_dispatch(route, plugin_id, app_id)
    found = _assert_matches(source, criteria, wanted, times)
    return found[-1] if found else None


def assert_never_dispatched(
    source: JournalSource,
    route: str | None = None,
    *,
    plugin_id: str | None = None,
    app_id: Any = ANY,
) -> None:
    """Assert that no dispatch to `route` (with this plugin and app_id) was recorded."""
    __tracebackhide__ = True
    journal = _journal(source)
    criteria = _dispatch_criteria(route, plugin_id, app_id)
    found = [d for d in journal.dispatches() if _matches(d, criteria)]
    if found:
        wanted = _expected_dispatch(route, plugin_id, app_id)
        count = "1 was" if len(found) == 1 else f"{len(found)} were"
        lines = [f"expected no {wanted.removeprefix('a ')}, but {count} recorded:"]
        lines += [f"  {_summary(dispatch)}" for dispatch in found[-CLOSEST_SHOWN:]]
        raise JournalAssertionError("\n".join(lines))


def assert_plugin_saw(
    source: JournalSource,
    route: str | None = None,
    *,
    plugin_id: str | None = None,
    **session_fields: Any,
) -> Dispatch:
    """Assert that the plugin's session (`get_current_session()`) held these fields on some
    dispatch to `route`, e.g. `app_id="app-9f3c"`; return the last such dispatch."""
    __tracebackhide__ = True
    unknown = sorted(set(session_fields) - set(SESSION_FIELDS))
    if unknown or not session_fields:
        raise TypeError(
            f"session fields to check: expected some of {SESSION_FIELDS}, got {unknown}"
        )
    criteria = _dispatch_criteria(route, plugin_id, ANY)
    criteria += [_session_criterion(name, value) for name, value in session_fields.items()]
    seen = ", ".join(f"{name}={value!r}" for name, value in session_fields.items())
    where = _where(route, plugin_id)
    return _assert_matches(source, criteria, f"the plugin to see {seen}{where}", None)[-1]


def assert_no_contract_warnings(source: JournalSource, hint: str = "") -> None:
    """Assert that no recorded dispatch carried a contract warning."""
    __tracebackhide__ = True
    dispatches = _journal(source).dispatches()
    warned = [dispatch for dispatch in dispatches if dispatch.warnings or dispatch.warnings_dropped]
    if not warned:
        return
    count = "1 dispatch" if len(warned) == 1 else f"{len(warned)} dispatches"
    lines = [f"expected no contract warnings, but {count} carried some{hint}:"]
    for dispatch in warned:
        lines.append(f"  {_summary(dispatch)}")
        lines += [f"    {warning}" for warning in dispatch.warnings]
        if dispatch.warnings_dropped:
            kept = f"the journal keeps {dispatch.warning_cap} per dispatch"
            lines.append(f"    and {dispatch.warnings_dropped} more ({kept})")
    raise JournalAssertionError("\n".join(lines))


def assert_handlers_answered(source: JournalSource) -> None:
    """Assert that no handler returned what no answer can be made of (a str, a list of
    numbers, an object JSON cannot hold): the plugin got an error, and the test should too."""
    __tracebackhide__ = True
    journal = _journal(source)
    journal.settle()
    misused = [
        call
        for dispatch in journal.dispatches()
        for call in dispatch.backwards
        if call.handler_misuse
    ]
    if misused:
        lines = ["a backwards-invocation handler returned what no answer can be made of:"]
        lines += [f"  {call.invoke_type}: {call.handler_misuse}" for call in misused]
        raise JournalAssertionError("\n".join(lines))


def assert_called_back(
    source: JournalSource,
    invoke_type: str,
    *,
    answered_by: str | None = None,
    times: int | None = None,
) -> CallRecord | None:
    """Assert that a plugin called back into Dify with `invoke_type` (answered by one of
    `ANSWERERS`: `handler`, `storage`, `forward`, `refused`, `denied`, `invalid` or
    `unanswered`); `times` asks for exactly that many. Return the last such call, or None
    when `times` is 0."""
    __tracebackhide__ = True
    if answered_by is not None and answered_by not in ANSWERERS:
        raise ValueError(f"answered_by {answered_by!r} is not one of {', '.join(ANSWERERS)}")
    journal = _journal(source)
    journal.settle()
    calls = [call for dispatch in journal.dispatches() for call in dispatch.backwards]
    found = [
        call
        for call in calls
        if call.invoke_type == invoke_type and answered_by in (None, call.answered_by)
    ]
    if len(found) == times or (times is None and found):
        return found[-1] if found else None
    wanted = f"a {invoke_type!r} call back into Dify"
    if answered_by is not None:
        wanted += f" answered by {answered_by!r}"
    count = "none" if not found else str(len(found))
    head = f"expected {wanted}{'' if times is None else ' ' + _times(times)}, but {count} matched"
    recorded = [f"  {_call_summary(call)}" for call in calls[-CLOSEST_SHOWN * 3 :]]
    lines = [head, "calls recorded:" if recorded else "no call back was recorded", *recorded]
    raise JournalAssertionError("\n".join(lines))


def _call_summary(call: CallRecord) -> str:
    outcome = f"error {call.error!r}" if call.error else f"{call.responses} answer(s)"
    return f"{call.invoke_type} {call.request!r}: answered by {call.answered_by}, {outcome}"


def _assert_matches(
    source: JournalSource, criteria: list[_Criterion], wanted: str, times: int | None
) -> list[Dispatch]:
    """The matching dispatches, when there are as many as `times` asks (None: some)."""
    __tracebackhide__ = True
    journal = _journal(source)
    journal.settle()
    recorded = journal.dispatches()
    found = [dispatch for dispatch in recorded if _matches(dispatch, criteria)]
    if len(found) == times or (times is None and found):
        return found
    raise JournalAssertionError(_failure(journal, recorded, found, criteria, wanted, times))


def _failure(
    journal: Journal,
    recorded: list[Dispatch],
    found: list[Dispatch],
    criteria: list[_Criterion],
    wanted: str,
    times: int | None,
) -> str:
    if times == 0:
        head = f"expected no {wanted.removeprefix('a ')}, but {len(found)} matched"
    elif times is not None:
        head = f"expected {wanted} {_times(times)}, but {len(found)} matched"
    elif not recorded:
        head = f"expected {wanted}, but no dispatch was recorded"
    else:
        head = f"expected {wanted}, but none of the {len(recorded)} recorded dispatches matches"
    if journal.dropped:
        head += f" ({journal.dropped} older ones were dropped: the journal keeps {journal.cap})"
    lines = [head]
    lines += [f"  matched: {_summary(dispatch)}" for dispatch in found]
    others = [dispatch for dispatch in recorded if dispatch not in found]
    if others:
        lines.append("closest recorded dispatches:")
        lines += [f"  {line}" for line in _closest(others, criteria)]
    return "\n".join(lines)


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _closest(dispatches: list[Dispatch], criteria: list[_Criterion]) -> list[str]:
    """The dispatches with the fewest differences (newest first among equals), explained."""
    scored = []
    for dispatch in dispatches:
        mismatches = [m for c in criteria if (m := c.mismatch(dispatch)) is not None]
        scored.append((len(mismatches), -dispatch.number, dispatch, mismatches))
    scored.sort(key=lambda entry: entry[:2])
    return [
        f"{_summary(dispatch)}: {'; '.join(mismatches)}"
        for _, _, dispatch, mismatches in scored[:CLOSEST_SHOWN]
    ]


def _dispatch_criteria(route: str | None, plugin_id: str | None, app_id: Any) -> list[_Criterion]:
    criteria = []
    if route is not None:
        criteria.append(_Criterion("route", route, lambda d: d.route))
    if plugin_id is not None:
        criteria.append(_Criterion("plugin", plugin_id, lambda d: d.plugin_id))
    if app_id is not ANY:
        criteria.append(_Criterion("app_id", app_id, lambda d: d.app_id))
    return criteria


def _session_criterion(name: str, value: Any) -> _Criterion:
    def read(dispatch: Dispatch) -> Any:
        if dispatch.session is None:
            return _NoSession()
        return getattr(dispatch.session, name)

    return _Criterion(f"session {name}", value, read)


class _NoSession:
    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "unknown (the plugin never got the request)"


def _matches(dispatch: Dispatch, criteria: list[_Criterion]) -> bool:
    return all(criterion.mismatch(dispatch) is None for criterion in criteria)


def _expected_dispatch(route: str | None, plugin_id: str | None, app_id: Any) -> str:
    text = f"a dispatch to {route}" if route else "a dispatch"
    if plugin_id is not None:
        text += f" for plugin {plugin_id}"
    if app_id is not ANY:
        text += f" with app_id {app_id!r}"
    return text


def _where(route: str | None, plugin_id: str | None) -> str:
    where = f" on {route}" if route else ""
    return where + (f" for plugin {plugin_id}" if plugin_id else "")


def _summary(dispatch: Dispatch) -> str:
    text = f"#{dispatch.number} {dispatch.route} plugin={dispatch.plugin_id or '-'}"
    text += f" app_id={dispatch.app_id!r} status={dispatch.status}"
    if dispatch.session is not None:
        text += f" (the plugin saw app_id={dispatch.session.app_id!r})"
    return text


def _journal(source: JournalSource) -> Journal:
    return source if isinstance(source, Journal) else source.journal
