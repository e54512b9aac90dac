"""The pytest plugin, as projects that install the package meet it.

Most tests here run pytest in a subprocess on a small project of their own, so that what is
checked is the installed plugin alone: this repository's conftest is not loaded there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from respx.models import AllMockedAssertionError

from emulator.runtime import SubprocessPlugin
from emulator.testing import (
    DaemonEmulator,
    JournalAssertionError,
    NoNode,
    assert_called_back,
    assert_dispatched,
    assert_never_dispatched,
    assert_plugin_saw,
)
from emulator.testing._inprocess import AppLoop, Interception
from emulator.testing.harness import EmulatorHarness
from helpers import FIXTURE_PLUGINS, ROOT, payload
from projects import run_pytest

FIXTURE_MANIFESTS = sorted(FIXTURE_PLUGINS.glob("*/manifest.yaml"))

TENANT = "4a1c3e52-6f0b-4d8e-9a7c-2b5d8e1f0a93"
CONSUMER = ROOT / "tests" / "consumer"


def project(tmp_path: Path, ini: str = "", **files: str) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n" + ini)
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


# The sample consumer project -------------------------------------------------------------


def test_the_consumer_project_passes_on_the_installed_package_alone() -> None:
    result = run_pytest(CONSUMER, "-c", str(CONSUMER / "pytest.ini"), str(CONSUMER))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# Installed but unused --------------------------------------------------------------------

# respx is left out: its own pytest plugin imports it (without patching anything).
UNTOUCHED = """
import os, socket, sys
import httpcore

def test_nothing_heavy_was_imported_or_patched(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("daemon_emulator")
    heavy = ("dify_plugin", "gevent", "fastapi", "starlette", "uvicorn", "pydantic",
             "emulator.server", "emulator.runtime", "emulator.journal")
    assert [name for name in heavy if name in sys.modules] == []
    assert socket.socket.__module__ == "socket"
    assert httpcore.ConnectionPool.handle_request.__module__ == "httpcore._sync.connection_pool"
    assert "PLUGIN_DAEMON_URL" not in os.environ
"""


def test_a_test_without_the_fixtures_runs_in_an_unchanged_process(tmp_path: Path) -> None:
    result = run_pytest(project(tmp_path, test_untouched=UNTOUCHED))

    assert result.returncode == 0, result.stdout + result.stderr


# Contract warnings fail the test ---------------------------------------------------------

WARNED = f"""
import json, os
import httpx, pytest

BODY = {json.dumps(payload("llm/invoke"))!r}

def send(app_id):
    body = {{**json.loads(BODY), "app_id": app_id}}
    headers = {{"X-Api-Key": os.environ["PLUGIN_DAEMON_KEY"], "X-Plugin-ID": "emulator/echo",
               "Content-Type": "application/json"}}
    url = os.environ["PLUGIN_DAEMON_URL"] + "/plugin/{TENANT}/dispatch/llm/invoke"
    return httpx.post(url, content=json.dumps(body), headers=headers)

def test_a_coerced_app_id(daemon_emulator):
    assert send(123).status_code == 200

@pytest.mark.allow_contract_warnings
def test_a_coerced_app_id_allowed(daemon_emulator):
    assert send(123).status_code == 200

def test_a_clean_dispatch(daemon_emulator_live):
    assert send("app-1").status_code == 200
"""


def test_a_contract_warning_fails_the_test_that_caused_it_unless_allowed(tmp_path: Path) -> None:
    result = run_pytest(project(tmp_path, test_warned=WARNED), "-rA")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    assert "FAILED test_warned.py::test_a_coerced_app_id - " in result.stdout
    assert (
        "JournalAssertionError: expected no contract warnings, but 1 dispatch carried some"
        " (mark the test allow_contract_warnings to allow them):"
    ) in result.stdout
    assert "id_coerced $.app_id: expected a string or null, got number 123" in result.stdout


MISUSED = f"""
import json, os
import httpx

BODY = {json.dumps(payload("tool/invoke"))!r}

def storage_get():
    body = json.loads(BODY)
    body["data"].update(tool="storage_get", tool_parameters={{"key": "greeting"}})
    headers = {{"X-Api-Key": os.environ["PLUGIN_DAEMON_KEY"], "X-Plugin-ID": "emulator/tool_echo"}}
    url = os.environ["PLUGIN_DAEMON_URL"] + "/plugin/{TENANT}/dispatch/tool/invoke"
    return httpx.post(url, json=body, headers=headers)

def test_a_handler_returning_a_str(daemon_emulator):
    daemon_emulator.backwards.handle("storage", lambda call: "not bytes")
    assert storage_get().status_code == 200

def test_a_handler_raising_on_purpose(daemon_emulator):
    def refuse(call):
        raise RuntimeError("the test wants the plugin to see this")
    daemon_emulator.backwards.handle("storage", refuse)
    assert "the test wants the plugin to see this" in storage_get().text
"""


def test_a_handler_that_returns_what_no_answer_can_be_made_of_fails_its_test(
    tmp_path: Path,
) -> None:
    ini = f"daemon_emulator_plugins = {FIXTURE_PLUGINS / 'tool_echo'}\n"

    result = run_pytest(project(tmp_path, ini, test_misused=MISUSED), "-rA")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "FAILED test_misused.py::test_a_handler_returning_a_str - " in result.stdout
    assert (
        "JournalAssertionError: a backwards-invocation handler returned what no answer can be"
        " made of:"
    ) in result.stdout
    assert (
        "storage: a handler returns a mapping, bytes, an iterable of mappings or None,"
        " not 'not bytes'"
    ) in result.stdout


# Which plugins are served ----------------------------------------------------------------

PLUGINS_SEEN = """
import os
import httpx, pytest

def served():
    health = httpx.get(os.environ["PLUGIN_DAEMON_URL"] + "/health/check").json()
    return [p.split(":")[0] for p in health["plugins"]]

def test_from_the_ini_option(daemon_emulator):
    assert served() == ["twins/twin-a"]

@pytest.mark.daemon_emulator_plugins("plugins/twin_b", "plugins/raising")
def test_from_the_marker(daemon_emulator_live):
    assert served() == ["twins/twin-b", "tests/raising"]
"""

PLUGINS_OVERRIDDEN = """
import os
from pathlib import Path
import httpx, pytest

@pytest.fixture
def daemon_emulator_plugins():
    return [Path("plugins/raising")]

def test_from_an_overriding_fixture(daemon_emulator):
    served = httpx.get(os.environ["PLUGIN_DAEMON_URL"] + "/health/check").json()["plugins"]
    assert [p.split(":")[0] for p in served] == ["tests/raising"]
"""


def test_plugins_come_from_the_ini_option_a_marker_or_an_overriding_fixture(
    tmp_path: Path,
) -> None:
    (tmp_path / "plugins").mkdir()
    for name in ("twin_a", "twin_b", "raising"):
        (tmp_path / "plugins" / name).symlink_to(FIXTURE_PLUGINS / name)
    ini = "daemon_emulator_plugins = plugins/twin_a\n"
    files = {"test_seen": PLUGINS_SEEN, "test_overridden": PLUGINS_OVERRIDDEN}

    result = run_pytest(project(tmp_path, ini, **files))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


# The URL and key, from the ini file ------------------------------------------------------

CONFIGURED = """
import os
import httpx

def health(url, key):
    return httpx.get(url + "/_emulator/faults", headers={"X-Api-Key": key}).status_code

def test_in_process(daemon_emulator):
    assert os.environ["PLUGIN_DAEMON_URL"] == daemon_emulator.url == "http://127.0.0.1:5999"
    assert os.environ["PLUGIN_DAEMON_KEY"] == daemon_emulator.key == "test_plugin_daemon_key"
    assert health("http://127.0.0.1:5999", "test_plugin_daemon_key") == 200
    assert health("http://127.0.0.1:5999", "plugin-api-key") == 401

def test_live(daemon_emulator_live):
    assert os.environ["PLUGIN_DAEMON_KEY"] == "test_plugin_daemon_key"
    assert health(daemon_emulator_live.url, "test_plugin_daemon_key") == 200
"""


def test_the_url_and_key_come_from_the_ini_options(tmp_path: Path) -> None:
    ini = "daemon_emulator_url = http://127.0.0.1:5999/\n"
    ini += "daemon_emulator_key = test_plugin_daemon_key\n"

    result = run_pytest(project(tmp_path, ini, test_configured=CONFIGURED))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# pytest-xdist --------------------------------------------------------------------------

PER_WORKER = """
import json, os, time
import httpx, pytest

@pytest.mark.parametrize("n", range(6))
def test_dispatch(daemon_emulator_live, n, worker_id):
    time.sleep(0.2)  # long enough for both workers to take tests
    httpx.get(os.environ["PLUGIN_DAEMON_URL"] + "/health/check")
    record = {"worker": worker_id, "url": daemon_emulator_live.url, "pid": os.getpid(),
              "journal": id(daemon_emulator_live.journal)}
    with open("seen.jsonl", "a") as seen:
        seen.write(json.dumps(record) + "\\n")
"""


def test_each_xdist_worker_gets_its_own_emulator(tmp_path: Path) -> None:
    result = run_pytest(project(tmp_path, test_workers=PER_WORKER), "-n", "2")

    assert result.returncode == 0, result.stdout + result.stderr
    seen = [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]
    by_worker: dict[str, set[tuple[str, int]]] = {}
    for record in seen:
        by_worker.setdefault(record["worker"], set()).add((record["url"], record["pid"]))
    assert sorted(by_worker) == ["gw0", "gw1"]
    assert all(len(servers) == 1 for servers in by_worker.values())
    assert by_worker["gw0"] != by_worker["gw1"]


# In this suite, beside its own conftest fixtures ----------------------------------------


def dispatch(emulator: DaemonEmulator, body: object, route: str = "llm/invoke") -> httpx.Response:
    headers = {"X-Api-Key": emulator.key, "X-Plugin-ID": "emulator/echo"}
    return httpx.post(emulator.dispatch_url(route, TENANT), json=body, headers=headers)


def test_the_fixtures_set_the_environment_dify_reads(
    daemon_emulator: DaemonEmulator,
) -> None:
    assert os.environ["PLUGIN_DAEMON_URL"] == daemon_emulator.url == "http://localhost:5002"
    assert os.environ["PLUGIN_DAEMON_KEY"] == daemon_emulator.key == "plugin-api-key"


def test_a_fault_and_a_dispatch_in_one_test(daemon_emulator: DaemonEmulator) -> None:
    daemon_emulator.inject(NoNode(), route="llm/invoke")

    assert dispatch(daemon_emulator, payload("llm/invoke", with_app_id=True)).status_code == 404
    assert len(daemon_emulator.dispatches()) == 1


def test_are_gone_in_the_next_test(daemon_emulator: DaemonEmulator) -> None:
    assert daemon_emulator.faults.rules() == [] and len(daemon_emulator.journal) == 0
    assert dispatch(daemon_emulator, payload("llm/invoke", with_app_id=True)).status_code == 200


def test_async_clients_are_routed_in_process_too(daemon_emulator: DaemonEmulator) -> None:
    async def invoke_all() -> list[int]:
        headers = {"X-Api-Key": daemon_emulator.key, "X-Plugin-ID": "emulator/echo"}
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        daemon_emulator.dispatch_url("llm/invoke", TENANT),
                        json={**payload("llm/invoke"), "app_id": f"app-{n}"},
                        headers=headers,
                    )
                    for n in range(5)
                )
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(invoke_all()) == [200] * 5
    for n in range(5):
        assert_plugin_saw(daemon_emulator, "llm/invoke", app_id=f"app-{n}")


def test_other_traffic_passes_through_the_in_process_fixture(
    daemon_emulator: DaemonEmulator, live_url: str
) -> None:
    response = httpx.get(live_url + "/health/check")

    assert response.status_code == 200
    assert_never_dispatched(daemon_emulator)


def test_a_tests_own_respx_routes_answer_beside_the_in_process_fixture(
    daemon_emulator: DaemonEmulator,
) -> None:
    with respx.mock(assert_all_called=False) as own:
        own.get("http://127.0.0.1:9/x").respond(200, json={"mocked": True})
        mocked = httpx.get("http://127.0.0.1:9/x")
        daemon = httpx.get(daemon_emulator.url + "/health/check")

    assert mocked.json() == {"mocked": True}
    assert daemon.json()["status"] == "ok"


def test_a_tests_own_respx_routes_answer_async_clients_too(
    daemon_emulator: DaemonEmulator,
) -> None:
    async def both() -> tuple[httpx.Response, httpx.Response]:
        with respx.mock(assert_all_called=False) as own:
            own.post("http://127.0.0.1:9/y").respond(201)
            async with httpx.AsyncClient() as client:
                mocked = await client.post("http://127.0.0.1:9/y")
                daemon = await client.get(daemon_emulator.url + "/health/check")
        return mocked, daemon

    mocked, daemon = asyncio.run(both())

    assert (mocked.status_code, daemon.status_code) == (201, 200)


def test_the_respx_mock_fixture_set_up_first_keeps_its_routes_and_its_assertion(
    respx_mock: respx.MockRouter, daemon_emulator: DaemonEmulator
) -> None:
    respx_mock.get("http://127.0.0.1:9/x").respond(204)

    mocked = httpx.get("http://127.0.0.1:9/x")
    daemon = httpx.get(daemon_emulator.url + "/health/check")
    with pytest.raises(AllMockedAssertionError, match="not mocked"):
        httpx.get("http://127.0.0.1:9/unrouted")

    assert (mocked.status_code, daemon.status_code) == (204, 200)


def test_the_daemons_url_stays_the_emulators_beside_a_router_started_before_it(
    app: Any,
) -> None:
    app_loop = AppLoop(app)
    interception = Interception("http://127.0.0.1:5997", app_loop)
    try:
        with respx.mock(assert_all_mocked=False) as own:  # unrouted requests: an empty 200
            interception.start()
            daemon = httpx.get("http://127.0.0.1:5997/health/check")
            other = httpx.get("http://127.0.0.1:9/x")
            own_calls = own.calls.call_count
    finally:
        interception.stop()
        app_loop.close()

    assert daemon.json()["status"] == "ok"
    assert (other.status_code, other.content, own_calls) == (200, b"", 1)


def test_a_sync_client_inside_a_running_event_loop_is_answered_in_process(
    daemon_emulator: DaemonEmulator,
) -> None:
    async def blocking_call() -> httpx.Response:
        return dispatch(daemon_emulator, payload("llm/invoke", with_app_id=True))

    response = asyncio.run(blocking_call())

    assert response.status_code == 200
    assert_plugin_saw(daemon_emulator, "llm/invoke", app_id="app-9f3c")


def test_the_request_log_goes_through_logging(
    daemon_emulator_live: DaemonEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="emulator.server"):
        dispatch(daemon_emulator_live, payload("llm/invoke", with_app_id=True))
        assert_dispatched(daemon_emulator_live, "llm/invoke", app_id="app-9f3c")

    assert any(
        record.name == "emulator.server"
        and "llm/invoke plugin=emulator/echo app_id=app-9f3c status=200" in record.getMessage()
        for record in caplog.records
    )


LOGGED = f"""
import os
import httpx

def test_a_failure_after_a_dispatch(daemon_emulator):
    url = os.environ["PLUGIN_DAEMON_URL"] + "/plugin/{TENANT}/dispatch/llm/invoke"
    key = os.environ["PLUGIN_DAEMON_KEY"]
    httpx.post(url, headers={{"X-Api-Key": key, "X-Plugin-ID": "emulator/echo"}})
    assert False
"""
REQUEST_LOG_LINE = "llm/invoke plugin=emulator/echo app_id=None status=400"


@pytest.mark.parametrize(
    ("ini", "args", "shown"),
    [("", (), False), ("", ("--log-level=INFO",), True), ("log_level = INFO\n", (), True)],
)
def test_a_failures_report_shows_the_request_log_at_log_level_info(
    tmp_path: Path, ini: str, args: tuple[str, ...], shown: bool
) -> None:
    result = run_pytest(project(tmp_path, ini, test_logged=LOGGED), *args)

    assert "1 failed" in result.stdout, result.stdout + result.stderr
    assert (REQUEST_LOG_LINE in result.stdout) is shown


# SDK test suites import dify_plugin at module level --------------------------------------

SDK_FIRST = """
import socket
import dify_plugin  # as the SDK's own tests do, at collection time
import httpx

def test_the_sdk_was_imported_without_gevent_and_the_live_server_works(daemon_emulator_live):
    assert socket.socket.__module__ == "socket"
    assert httpx.get(daemon_emulator_live.url + "/health/check").status_code == 200
"""


def test_the_ini_option_imports_the_sdk_before_test_modules_and_unpatched(
    tmp_path: Path,
) -> None:
    ini = "daemon_emulator_import_sdk = true\nfilterwarnings = error::RuntimeWarning\n"

    result = run_pytest(project(tmp_path, ini, test_sdk_first=SDK_FIRST))

    assert result.returncode == 0, result.stdout + result.stderr


SDK_FIRST_UNCONFIGURED = """
import dify_plugin  # at the top, as SDK tests do, but without the ini option
import httpx

def test_in_process(daemon_emulator):
    httpx.get(daemon_emulator.url + "/health/check")

def test_live(daemon_emulator_live):
    httpx.get(daemon_emulator_live.url + "/health/check")
"""


def test_a_gevent_patched_process_fails_each_fixture_with_the_fix_named(tmp_path: Path) -> None:
    result = run_pytest(project(tmp_path, test_sdk_first=SDK_FIRST_UNCONFIGURED), "-rA")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 errors" in result.stdout
    assert result.stdout.count("Fix: add `daemon_emulator_import_sdk = true`") == 2
    assert "uvicorn did not start" not in result.stdout
    assert "not mocked" not in result.stdout and "assert False" not in result.stdout


def storage_get(emulator: DaemonEmulator, key: str) -> list[dict[str, Any]]:
    """tool_echo's storage_get tool, which reads `key` through a call back into Dify."""
    body = payload("tool/invoke")
    body["data"].update(tool="storage_get", tool_parameters={"key": key})
    headers = {"X-Api-Key": emulator.key, "X-Plugin-ID": "emulator/tool_echo"}
    answer = httpx.post(emulator.dispatch_url("tool/invoke", TENANT), json=body, headers=headers)
    return [json.loads(item[len("data: ") :]) for item in answer.text.split("\n\n") if item]


@pytest.mark.daemon_emulator_plugins("fixtures/plugins/tool_echo")
def test_a_test_answers_a_plugins_call_back_with_a_handler(
    daemon_emulator: DaemonEmulator,
) -> None:
    daemon_emulator.backwards.handle("storage", lambda call: b"from the test")

    (item,) = storage_get(daemon_emulator, "greeting")

    assert item["data"]["message"]["text"] == "from the test"
    assert daemon_emulator.dispatches()[0].backwards[0].answered_by == "handler"


@pytest.mark.daemon_emulator_plugins("fixtures/plugins/tool_echo")
def test_a_live_test_seeds_the_storage_the_plugin_reads(
    daemon_emulator_live: DaemonEmulator,
) -> None:
    storage = daemon_emulator_live.backwards.storage
    storage.set(TENANT, "emulator/tool_echo", "greeting", b"seeded")

    (item,) = storage_get(daemon_emulator_live, "greeting")

    assert item["data"]["message"]["text"] == "seeded"


@pytest.mark.daemon_emulator_plugins("fixtures/plugins/tool_echo")
def test_handlers_and_storage_are_gone_in_the_next_test(daemon_emulator: DaemonEmulator) -> None:
    (item,) = storage_get(daemon_emulator, "greeting")

    assert item["code"] == -500
    assert "load data failed" in item["message"]


@pytest.mark.daemon_emulator_plugins("fixtures/plugins/tool_echo")
def test_assert_called_back_names_the_calls_it_found(daemon_emulator: DaemonEmulator) -> None:
    daemon_emulator.backwards.handle("storage", lambda call: b"x")
    storage_get(daemon_emulator, "greeting")

    call = assert_called_back(daemon_emulator, "storage", answered_by="handler", times=1)
    assert call is not None and call.request == {"opt": "get", "key": "greeting"}
    assert_called_back(daemon_emulator, "llm", times=0)
    with pytest.raises(JournalAssertionError) as failure:
        assert_called_back(daemon_emulator, "storage", answered_by="forward")
    assert str(failure.value) == (
        "expected a 'storage' call back into Dify answered by 'forward', but none matched\n"
        "calls recorded:\n"
        "  storage {'opt': 'get', 'key': 'greeting'}: answered by handler, 1 answer(s)"
    )
    with pytest.raises(ValueError, match="answered_by 'handlers' is not one of handler, "):
        assert_called_back(daemon_emulator, "storage", answered_by="handlers")


@pytest.mark.daemon_emulator_plugins("fixtures/plugins/tool_echo::subprocess")
def test_a_marker_entry_can_run_its_plugin_as_a_process(daemon_emulator: DaemonEmulator) -> None:
    daemon_emulator.backwards.handle("storage", lambda call: b"across processes")

    (item,) = storage_get(daemon_emulator, "greeting")

    assert item["data"]["message"]["text"] == "across processes"


def test_the_harness_takes_serves_entries_and_stops_its_processes_at_the_end() -> None:
    harness = EmulatorHarness()
    try:
        harness.prepare("http://daemon", [f"{FIXTURE_PLUGINS / 'tool_echo'}::subprocess"])
        (process_plugin,) = harness.app.state.plugins
        harness.prepare("http://daemon", [FIXTURE_PLUGINS])
        folder = sorted(plugin.identity.plugin_id for plugin in harness.app.state.plugins)
    finally:
        harness.close()

    assert isinstance(process_plugin, SubprocessPlugin)
    assert folder == sorted(
        f"{manifest['author']}/{manifest['name']}"
        for manifest in map(yaml.safe_load, map(Path.read_text, FIXTURE_MANIFESTS))
    )
    assert process_plugin.pid is None
