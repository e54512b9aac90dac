"""The journal assertions: they pass quietly, and their failure messages name what was expected
and list the closest recorded dispatches with what differs in each."""

from __future__ import annotations

import httpx
import pytest

from emulator.contract.findings import ContractWarning, WarningKind
from emulator.journal import Journal
from emulator.testing import (
    DaemonEmulator,
    JournalAssertionError,
    assert_dispatched,
    assert_never_dispatched,
    assert_no_contract_warnings,
    assert_plugin_saw,
)
from helpers import payload

TENANT = "4a1c3e52-6f0b-4d8e-9a7c-2b5d8e1f0a93"


def dispatch(emulator: DaemonEmulator, route: str, app_id: str, key: str = "") -> None:
    headers = {"X-Api-Key": key or emulator.key, "X-Plugin-ID": "emulator/echo"}
    body = {**payload(route, with_app_id=True), "app_id": app_id}
    httpx.post(emulator.dispatch_url(route, TENANT), json=body, headers=headers)


@pytest.fixture
def two_dispatches(daemon_emulator: DaemonEmulator) -> DaemonEmulator:
    dispatch(daemon_emulator, "llm/invoke", "app-1")
    dispatch(daemon_emulator, "text_embedding/invoke", "app-9f3c")
    return daemon_emulator


def failure(check: object, *args: object, **kwargs: object) -> str:
    assert callable(check)
    with pytest.raises(JournalAssertionError) as raised:
        check(*args, **kwargs)
    assert isinstance(raised.value, AssertionError)
    return str(raised.value)


LLM_1 = (
    "#1 llm/invoke plugin=emulator/echo app_id='app-1' status=200 (the plugin saw app_id='app-1')"
)
EMBED_2 = (
    "#2 text_embedding/invoke plugin=emulator/echo app_id='app-9f3c' status=200"
    " (the plugin saw app_id='app-9f3c')"
)


def test_matching_dispatches_pass_and_are_returned(two_dispatches: DaemonEmulator) -> None:
    found = assert_dispatched(two_dispatches, "llm/invoke", app_id="app-1", times=1)
    seen = assert_plugin_saw(two_dispatches, app_id="app-9f3c", user_id="user-7b21")
    assert_never_dispatched(two_dispatches, "rerank/invoke")
    assert_never_dispatched(two_dispatches.journal, "llm/invoke", app_id="app-9f3c")

    assert (found.number, seen.number) == (1, 2)


def test_a_missing_dispatch_lists_the_closest_with_what_differs(
    two_dispatches: DaemonEmulator,
) -> None:
    message = failure(assert_dispatched, two_dispatches, "llm/invoke", app_id="app-9f3c")

    assert message == (
        "expected a dispatch to llm/invoke with app_id 'app-9f3c', but none of the 2 recorded"
        " dispatches matches\n"
        "closest recorded dispatches:\n"
        f"  {EMBED_2}: route is 'text_embedding/invoke', not 'llm/invoke'\n"
        f"  {LLM_1}: app_id is 'app-1', not 'app-9f3c'"
    )


def test_the_closest_are_those_with_the_fewest_differences(
    two_dispatches: DaemonEmulator,
) -> None:
    message = failure(
        assert_dispatched, two_dispatches, "llm/invoke", plugin_id="emulator/echo", app_id="x"
    )

    assert message.splitlines()[2:] == [
        f"  {LLM_1}: app_id is 'app-1', not 'x'",
        f"  {EMBED_2}: route is 'text_embedding/invoke', not 'llm/invoke'; app_id is 'app-9f3c',"
        " not 'x'",
    ]


def test_a_wrong_count_lists_the_matches_and_the_closest_others(
    two_dispatches: DaemonEmulator,
) -> None:
    message = failure(assert_dispatched, two_dispatches, "llm/invoke", times=2)

    assert message == (
        "expected a dispatch to llm/invoke twice, but 1 matched\n"
        f"  matched: {LLM_1}\n"
        "closest recorded dispatches:\n"
        f"  {EMBED_2}: route is 'text_embedding/invoke', not 'llm/invoke'"
    )


def test_times_zero_passes_when_nothing_matched(two_dispatches: DaemonEmulator) -> None:
    assert assert_dispatched(two_dispatches, "rerank/invoke", times=0) is None
    assert assert_dispatched(two_dispatches, "llm/invoke", app_id="app-2", times=0) is None


def test_times_zero_fails_with_the_dispatches_that_matched(
    two_dispatches: DaemonEmulator,
) -> None:
    message = failure(assert_dispatched, two_dispatches, "llm/invoke", times=0)

    assert message == (
        "expected no dispatch to llm/invoke, but 1 matched\n"
        f"  matched: {LLM_1}\n"
        "closest recorded dispatches:\n"
        f"  {EMBED_2}: route is 'text_embedding/invoke', not 'llm/invoke'"
    )


def test_a_negative_count_is_refused(two_dispatches: DaemonEmulator) -> None:
    with pytest.raises(ValueError, match="times: expected a count of 0 or more, got -1"):
        assert_dispatched(two_dispatches, "llm/invoke", times=-1)


def test_an_empty_journal_says_so(daemon_emulator: DaemonEmulator) -> None:
    message = failure(assert_dispatched, daemon_emulator, "llm/invoke")

    assert message == "expected a dispatch to llm/invoke, but no dispatch was recorded"


def test_never_dispatched_lists_the_dispatches_that_were(two_dispatches: DaemonEmulator) -> None:
    message = failure(assert_never_dispatched, two_dispatches, "llm/invoke")

    assert message == f"expected no dispatch to llm/invoke, but 1 was recorded:\n  {LLM_1}"


def test_what_the_plugin_saw_is_compared_field_by_field(two_dispatches: DaemonEmulator) -> None:
    message = failure(
        assert_plugin_saw, two_dispatches, "llm/invoke", app_id="app-9f3c", user_id="user-7b21"
    )

    assert message == (
        "expected the plugin to see app_id='app-9f3c', user_id='user-7b21' on llm/invoke, but"
        " none of the 2 recorded dispatches matches\n"
        "closest recorded dispatches:\n"
        f"  {EMBED_2}: route is 'text_embedding/invoke', not 'llm/invoke'\n"
        f"  {LLM_1}: session app_id is 'app-1', not 'app-9f3c'"
    )


def test_a_dispatch_that_never_reached_the_plugin_says_so(
    daemon_emulator: DaemonEmulator,
) -> None:
    dispatch(daemon_emulator, "llm/invoke", "app-1", key="wrong")

    message = failure(assert_plugin_saw, daemon_emulator, app_id="app-1")

    assert message.splitlines()[-1] == (
        "  #1 llm/invoke plugin=emulator/echo app_id=None status=401: session app_id is unknown"
        " (the plugin never got the request), not 'app-1'"
    )


def test_dropped_dispatches_are_mentioned() -> None:
    journal = Journal(cap=1)
    for route in ("llm/invoke", "rerank/invoke"):
        journal.open(route, TENANT, "emulator/echo", []).record_end()

    message = failure(assert_dispatched, journal, "llm/invoke")

    assert message.splitlines()[0] == (
        "expected a dispatch to llm/invoke, but none of the 1 recorded dispatches matches"
        " (1 older ones were dropped: the journal keeps 1)"
    )


def test_warnings_past_the_journals_cap_are_counted_in_the_message() -> None:
    journal = Journal(warning_cap=1)
    dispatch = journal.open("llm/invoke", TENANT, "emulator/echo", [])
    warnings = [
        ContractWarning(WarningKind.UNKNOWN_KEY, f"$.data.k{n}", "a field", "k", "dropped")
        for n in range(3)
    ]
    dispatch.record_binding({"app_id": None, "data": {}}, warnings)
    dispatch.record_end()

    message = failure(assert_no_contract_warnings, journal)

    assert message.splitlines()[2:] == [
        "    unknown_key $.data.k0: expected a field, got k; dropped",
        "    and 2 more (the journal keeps 1 per dispatch)",
    ]


@pytest.mark.allow_contract_warnings
def test_contract_warnings_are_listed_per_dispatch(daemon_emulator: DaemonEmulator) -> None:
    headers = {"X-Api-Key": daemon_emulator.key, "X-Plugin-ID": "emulator/echo"}
    body = {**payload("llm/invoke"), "app_id": 7}
    httpx.post(daemon_emulator.dispatch_url("llm/invoke", TENANT), json=body, headers=headers)

    message = failure(assert_no_contract_warnings, daemon_emulator)

    assert message == (
        "expected no contract warnings, but 1 dispatch carried some:\n"
        "  #1 llm/invoke plugin=emulator/echo app_id='' status=200 (the plugin saw app_id='')\n"
        "    id_coerced $.app_id: expected a string or null, got number 7; the daemon forwards"
        ' ""'
    )


def test_an_unknown_session_field_is_a_type_error(daemon_emulator: DaemonEmulator) -> None:
    with pytest.raises(TypeError, match="session fields to check: expected some of"):
        assert_plugin_saw(daemon_emulator, tenant="x")
