"""The subprocess runtime: each plugin as its own process, as the daemon's local runtime runs it.

The end-to-end modules (tests/conftest.py, RUNTIME_MODULES) already run under this runtime;
these tests cover what only a process can do: die, start again, fail to start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dify_client import DaemonError, collect
from emulator.config import EXAMPLE_PLUGIN, RuntimeChoice, Settings
from emulator.runtime import PluginLoadError, PluginUnavailableError, SubprocessPlugin
from emulator.runtime._stdio import MAX_LINE_BYTES
from emulator.runtime.declaration import read_package
from emulator.runtime.registry import PluginSet, RequestHandle, _describe
from emulator.runtime.subprocess import NO_PROPER_INSTANCE, plugin_environment
from emulator.server.app import create_app
from helpers import (
    ECHO,
    FIXTURE_PLUGINS,
    KEY,
    dispatch_headers,
    dispatch_url,
    live_server,
    payload,
)

RAISING_ID = "tests/raising"
TIMEOUT = 2.0
"""PLUGIN_MAX_EXECUTION_TIMEOUT of this module's server, in seconds."""


@pytest.fixture(scope="module")
def plugins() -> Iterator[PluginSet]:
    loaded = PluginSet.load(
        [EXAMPLE_PLUGIN, FIXTURE_PLUGINS / "raising"], lambda path: RuntimeChoice("subprocess")
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def live_url(plugins: PluginSet) -> Iterator[str]:
    with live_server(create_app(Settings(key=KEY, max_execution_timeout=TIMEOUT), plugins)) as url:
        yield url


@pytest.fixture
def client(live_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=30) as c:
        yield c


def llm_body(model: str, provider: str, **credentials: Any) -> dict[str, Any]:
    body = json.loads((FIXTURE_PLUGINS.parent / "payloads" / "llm__invoke.json").read_text())
    body["app_id"] = "app-9f3c"
    body["data"].update(model=model, provider=provider, credentials=credentials)
    return body


def subprocess_plugin(plugins: PluginSet, plugin_id: str) -> SubprocessPlugin:
    plugin = plugins.get(plugin_id)
    assert isinstance(plugin, SubprocessPlugin)
    return plugin


def request_line(provider: str, model: str, session_id: str | None = None) -> str:
    data = {
        "action": "invoke_llm",
        "credentials": {},
        "model": model,
        "model_parameters": {},
        "model_type": "llm",
        "prompt_messages": [{"role": "user", "content": "hi"}],
        "provider": provider,
        "stop": [],
        "stream": True,
        "tools": [],
        "type": "model",
        "user_id": "user-1",
    }
    envelope = {
        "session_id": session_id or str(uuid.uuid4()),
        "conversation_id": None,
        "message_id": None,
        "app_id": "app-1",
        "endpoint_id": None,
        "context": None,
        "event": "request",
        "data": data,
    }
    return json.dumps(envelope)


def kill(plugin: SubprocessPlugin) -> None:
    """Kill the plugin's process and wait until the runtime saw it die."""
    assert plugin.pid is not None
    os.kill(plugin.pid, signal.SIGKILL)
    wait_until_dead(plugin)


def wait_until_dead(plugin: SubprocessPlugin) -> None:
    deadline = time.monotonic() + 10
    while plugin.pid is not None:
        assert time.monotonic() < deadline, "the runtime did not notice the process died"
        time.sleep(0.02)


def start_patiently(plugin: SubprocessPlugin, line: str, on_event: Any) -> RequestHandle:
    """Start a request, trying again while the plugin's new process is still starting."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return plugin.start(line, on_event)
        except PluginUnavailableError:
            assert time.monotonic() < deadline, "the plugin's process never became ready"


def plugin_copy(tmp_path: Path, main: str) -> Path:
    """The example plugin with its main.py replaced."""
    directory = tmp_path / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, directory, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "main.py").write_text(main)
    return directory


# A process per plugin ---------------------------------------------------------------------


def test_each_plugin_runs_in_its_own_process_started_as_the_daemon_starts_it(
    plugins: PluginSet,
) -> None:
    echo, raising = subprocess_plugin(plugins, ECHO), subprocess_plugin(plugins, RAISING_ID)

    assert echo.pid is not None and raising.pid is not None
    assert len({echo.pid, raising.pid, os.getpid()}) == 3
    environ = Path(f"/proc/{echo.pid}/environ").read_bytes().split(b"\0")
    assert b"INSTALL_METHOD=local" in environ
    assert Path(f"/proc/{echo.pid}/cwd").resolve() == EXAMPLE_PLUGIN.resolve()
    assert Path(f"/proc/{echo.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"main"]


def test_the_identity_and_providers_are_read_from_the_plugins_yaml(plugins: PluginSet) -> None:
    echo = subprocess_plugin(plugins, ECHO)

    assert echo.identity.unique_identifier.startswith("emulator/echo:0.1.0@")
    (provider,) = echo.providers
    assert provider.name == "echo"
    assert provider.models["llm"] == ("echo-1",) and "text-embedding" in provider.model_types


def test_a_backwards_response_sent_to_the_process_reaches_the_waiting_plugin(
    plugins: PluginSet,
) -> None:
    raising = subprocess_plugin(plugins, RAISING_ID)
    frames: list[dict[str, Any]] = []
    answered, streamed = threading.Event(), threading.Event()

    def on_event(line: str) -> None:
        frame = json.loads(line)
        frames.append(frame)
        if frame["data"]["type"] == "stream":
            streamed.set()
        if frame["data"]["type"] == "invoke" and not answered.is_set():
            answered.set()
            threading.Thread(target=answer, args=(frame,)).start()

    def answer(frame: dict[str, Any]) -> None:
        request_id = frame["data"]["data"]["backwards_request_id"]
        reply = {"backwards_request_id": request_id, "event": "response", "message": ""}
        line = {
            "session_id": frame["session_id"],
            "event": "backwards_response",
            "data": {**reply, "data": {"data": b"stored".hex()}},
        }
        # The SDK listens for the answer only after it printed the call, and drops an
        # answer that comes before: send it until the plugin goes on.
        for _ in range(40):
            raising.send(json.dumps(line))
            if streamed.wait(0.5):
                return

    running = raising.start(request_line("raising", "backwards"), on_event)

    assert running.join(20)
    streamed = [f["data"]["data"] for f in frames if f["data"]["type"] == "stream"]
    assert [chunk["delta"]["message"]["content"] for chunk in streamed] == ["stored"]
    assert frames[-1]["data"]["type"] == "end"


def test_a_line_that_is_no_backwards_response_is_refused(plugins: PluginSet) -> None:
    with pytest.raises(ValueError, match="not a backwards_response line"):
        subprocess_plugin(plugins, ECHO).send(request_line("echo", "echo-1"))


# Process death ----------------------------------------------------------------------------


def test_a_killed_plugin_times_its_streams_out_and_the_next_request_starts_it_again(
    plugins: PluginSet, client: httpx.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raising = subprocess_plugin(plugins, RAISING_ID)
    first_pid = raising.pid
    assert first_pid is not None
    body = llm_body("forever", "raising", closed_marker=str(tmp_path / "closed"))

    with client.stream(
        "POST", dispatch_url("llm/invoke"), json=body, headers=dispatch_headers(RAISING_ID)
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith('data: {"code":0')
        os.kill(first_pid, signal.SIGKILL)
        started = time.monotonic()
        rest = "\n".join(lines)

    chunks, error = collect(rest)
    assert error == DaemonError("PluginDaemonInternalServerError", "killed by timeout")
    assert time.monotonic() - started < TIMEOUT + 5
    assert not (tmp_path / "closed").exists()  # the plugin never got to close its stream

    with caplog.at_level(logging.INFO, logger="emulator.plugin"):
        again = client.post(
            dispatch_url("llm/invoke"),
            json=llm_body("boom", "raising"),
            headers=dispatch_headers(RAISING_ID),
        )
    chunks, error = collect(again.text)
    assert [c["delta"]["message"]["content"] for c in chunks] == ["one", "two"]
    assert error == DaemonError("InvokeBadRequestError", "boom after two chunks")
    assert raising.pid not in (None, first_pid)
    logged = [r.getMessage() for r in caplog.records if r.name == "emulator.plugin"]
    assert any("Installed model: raising" in message for message in logged)


def test_other_plugins_keep_serving_while_one_is_dead(
    plugins: PluginSet, client: httpx.Client
) -> None:
    kill(subprocess_plugin(plugins, RAISING_ID))

    answer = client.post(
        dispatch_url("llm/invoke"), json=llm_body("echo-1", "echo"), headers=dispatch_headers()
    )

    assert answer.status_code == 200 and collect(answer.text)[1] is None
    assert client.get("/health/check").status_code == 200


def test_a_plugin_that_cannot_start_again_gets_the_daemons_no_instance_error(
    tmp_path: Path,
) -> None:
    directory = plugin_copy(
        tmp_path,
        "import pathlib, sys\n"
        "if pathlib.Path('broken').exists():\n"
        "    sys.exit('broken on purpose')\n" + (EXAMPLE_PLUGIN / "main.py").read_text(),
    )
    plugin = SubprocessPlugin.load(directory, write_budget=1.5)
    try:
        (directory / "broken").touch()
        kill(plugin)

        with pytest.raises(PluginUnavailableError) as refused:
            plugin.start(request_line("echo", "echo-1"), lambda line: None)

        assert (
            str(refused.value)
            == NO_PROPER_INSTANCE
            == "no proper instance\nfailed to write request"
        )
        (directory / "broken").unlink()
        frames: list[str] = []
        assert start_patiently(plugin, request_line("echo", "echo-1"), frames.append).join(20)
        assert json.loads(frames[-1])["data"]["type"] == "end"
    finally:
        plugin.close()


def test_no_ready_instance_answers_dify_as_the_daemon_does(tmp_path: Path) -> None:
    directory = plugin_copy(
        tmp_path,
        "import pathlib, sys\n"
        "if pathlib.Path('broken').exists():\n"
        "    sys.exit('broken on purpose')\n" + (EXAMPLE_PLUGIN / "main.py").read_text(),
    )
    plugin = SubprocessPlugin.load(directory, write_budget=0.5)
    app = create_app(Settings(key=KEY), PluginSet([plugin]))
    try:
        (directory / "broken").touch()
        kill(plugin)
        with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            streamed = client.post(
                dispatch_url("llm/invoke"),
                json=llm_body("echo-1", "echo"),
                headers=dispatch_headers(),
            )
            polled = client.post(
                dispatch_url("model/polling/check"),
                json=payload("model/polling/check"),
                headers=dispatch_headers(),
            )
            healthy = client.get("/health/check")
    finally:
        plugin.close()

    assert (streamed.status_code, streamed.headers["content-type"]) == (200, "text/event-stream")
    assert collect(streamed.text) == (
        [],
        DaemonError("PluginDaemonInternalServerError", NO_PROPER_INSTANCE),
    )
    assert polled.status_code == 500
    assert json.loads(json.loads(polled.text)["message"]) == {
        "message": NO_PROPER_INSTANCE,
        "error_type": "PluginInvokeError",
        "args": None,
    }
    assert healthy.status_code == 200


def test_a_stdout_line_longer_than_the_daemon_reads_ends_the_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shout = (
        "import sys, threading\n"
        "def shout():\n"
        f"    sys.stdout.write('x' * {MAX_LINE_BYTES} + '\\n')\n"
        "    sys.stdout.flush()\n"
        "threading.Timer(0.5, shout).start()\n"
    )
    main = (EXAMPLE_PLUGIN / "main.py").read_text()
    # After the SDK's import, which patches threading with gevent.
    directory = plugin_copy(tmp_path, main.replace("if __name__", shout + "if __name__"))
    plugin = SubprocessPlugin.load(directory)
    try:
        with caplog.at_level(logging.ERROR, logger="emulator.runtime"):
            wait_until_dead(plugin)
    finally:
        plugin.close()

    assert any("longer than 5242880 bytes" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("runtime", ["inprocess", "subprocess"])
def test_a_frame_over_the_stdout_cap_times_the_stream_out_in_either_runtime(
    runtime: str, caplog: pytest.LogCaptureFixture
) -> None:
    cap = 64 * 1024
    body = llm_body("echo-1", "echo")
    body["data"]["prompt_messages"] = [{"role": "user", "content": "hi " + "x" * cap}]
    loaded = PluginSet.load([EXAMPLE_PLUGIN], lambda path: RuntimeChoice(runtime, None, cap))
    app = create_app(Settings(key=KEY, max_execution_timeout=TIMEOUT), loaded)
    try:
        with (
            caplog.at_level(logging.ERROR, logger="emulator.runtime"),
            live_server(app) as url,
            httpx.Client(base_url=url, timeout=30) as http,
        ):
            answer = http.post(dispatch_url("llm/invoke"), json=body, headers=dispatch_headers())
    finally:
        loaded.close()

    chunks, error = collect(answer.text)
    # The echo's first chunk reports its session; the word "hi" comes next, then the long one.
    assert [chunk["delta"]["message"]["content"] for chunk in chunks][1:] == ["hi"]
    assert error == DaemonError("PluginDaemonInternalServerError", "killed by timeout")
    assert any(
        "has an error on stdout: bufio.Scanner: token too long" in record.getMessage()
        and f"longer than {cap} bytes" in record.getMessage()
        for record in caplog.records
    )


# The load log line -------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["inprocess", "subprocess"])
@pytest.mark.parametrize(
    ("plugin", "declares"),
    [
        ("tool_echo", "tool provider tool_echo (tools: echo_ids, blob, storage_get)"),
        ("agent_echo", "agent strategy provider agent_echo (strategies: echo)"),
        ("datasource_echo", "datasource provider drive_echo (datasources: files)"),
        ("trigger_echo", "trigger provider trigger_echo (events: ping)"),
        ("raising", "raising (llm: backwards, boom, forever)"),
    ],
)
def test_the_load_line_lists_what_the_plugin_declares(
    runtime: str, plugin: str, declares: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="emulator.runtime"):
        PluginSet.load([FIXTURE_PLUGINS / plugin], lambda path: RuntimeChoice(runtime)).close()

    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert line.partition(": ")[2] == declares


def test_the_load_line_lists_endpoints_by_method_and_path(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text(
        "version: 0.0.1\ntype: plugin\nauthor: someone\nname: hooks\nicon: icon.svg\n"
        "label: {en_US: Hooks}\ncreated_at: 2025-01-01T00:00:00Z\n"
        "plugins: {endpoints: [group.yaml]}\n"
    )
    (tmp_path / "group.yaml").write_text(
        "endpoints:\n  - {path: /hook, method: POST}\n  - get.yaml\n"
    )
    (tmp_path / "get.yaml").write_text("path: /status\nmethod: GET\n")
    (tmp_path / "_assets").mkdir()
    (tmp_path / "_assets" / "icon.svg").write_text("<svg/>")

    assert _describe([], read_package(tmp_path)) == "endpoints (POST /hook, GET /status)"


@pytest.mark.parametrize("runtime", ["inprocess", "subprocess"])
def test_a_plugin_the_daemon_could_not_install_loads_with_a_warning(
    runtime: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Path(shutil.copytree(FIXTURE_PLUGINS / "twin_a", tmp_path / "twin_a"))
    (directory / "_assets" / "icon.svg").rename(directory / "_assets" / "other.svg")

    with caplog.at_level(logging.INFO, logger="emulator.runtime"):
        loaded = PluginSet.load([directory], lambda path: RuntimeChoice(runtime))
    loaded.close()

    [warning] = [
        r for r in caplog.records if r.name == "emulator.runtime" and r.levelno == logging.WARNING
    ]
    message = warning.getMessage()
    assert message.startswith("plugin twins/twin-a:0.0.1@")
    assert f"from {directory}: the daemon would refuse to install it" in message
    assert "fails: file not found: icon.svg; failed to remap plugin icon" in message
    assert [plugin.identity.plugin_id for plugin in loaded] == ["twins/twin-a"]


# Start-up failures ------------------------------------------------------------------------


def test_a_plugin_that_fails_at_startup_is_a_load_error_with_its_stderr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = plugin_copy(tmp_path, "raise RuntimeError('no credentials file here')\n")

    with caplog.at_level(logging.WARNING), pytest.raises(PluginLoadError) as failed:
        SubprocessPlugin.load(directory)

    message = str(failed.value)
    assert f"cannot load plugin from {directory}" in message
    assert "-m main" in message and "exited with code 1 before its first heartbeat" in message
    assert message.rstrip().endswith("RuntimeError: no credentials file here")
    stderr = [r.getMessage() for r in caplog.records if r.name == "emulator.plugin"]
    assert any("no credentials file here" in line for line in stderr)


def test_a_plugin_that_never_sends_a_heartbeat_is_stopped_after_the_bound(
    tmp_path: Path,
) -> None:
    directory = plugin_copy(
        tmp_path, "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n"
    )

    with pytest.raises(PluginLoadError, match="no heartbeat within 1 s, so it was stopped"):
        SubprocessPlugin.load(directory, start_timeout=1)


def test_an_interpreter_that_does_not_exist_is_a_load_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-venv" / "bin" / "python"

    with pytest.raises(PluginLoadError, match=f"cannot run {missing}"):
        SubprocessPlugin.load(EXAMPLE_PLUGIN, missing)


def test_a_virtual_environment_stands_for_its_python(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)

    with pytest.raises(PluginLoadError, match=f"cannot run {venv / 'bin' / 'python'}"):
        SubprocessPlugin.load(EXAMPLE_PLUGIN, venv)


def test_a_failed_load_stops_the_plugins_it_had_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = plugin_copy(tmp_path, "raise SystemExit(3)\n")

    with caplog.at_level(logging.INFO), pytest.raises(PluginLoadError, match="exited with code 3"):
        PluginSet.load([EXAMPLE_PLUGIN, broken], lambda path: RuntimeChoice("subprocess"))

    stopped = [r.getMessage() for r in caplog.records if r.name == "emulator.runtime"]
    assert any(m.startswith("plugin emulator/echo (pid") and m.endswith("stopped") for m in stopped)


def test_a_plugin_process_runs_local_with_the_emulators_call_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MAX_INVOCATION_TIMEOUT", raising=False)
    monkeypatch.setenv("INSTALL_METHOD", "remote")
    default = plugin_environment()
    monkeypatch.setenv("MAX_INVOCATION_TIMEOUT", "3")

    assert (default["INSTALL_METHOD"], default["MAX_INVOCATION_TIMEOUT"]) == ("local", "10")
    assert plugin_environment()["MAX_INVOCATION_TIMEOUT"] == "3"
