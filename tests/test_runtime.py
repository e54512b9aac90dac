"""The in-process runtime, driven with the daemon's request lines."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest

from emulator.runtime import (
    InProcessPlugin,
    PluginLoadError,
    RunningRequest,
    StreamClosed,
    directory_checksum,
    import_sdk,
    sdk_version,
)
from emulator.runtime.inprocess import _RequestFrames
from emulator.runtime.plugin import missing_entrypoint
from emulator.runtime.registry import PluginSet

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "fixtures" / "plugins"
TWIN_A = PLUGINS / "twin_a"
TWIN_B = PLUGINS / "twin_b"
RAISING = PLUGINS / "raising"

Frame = dict[str, Any]

caller_var: ContextVar[str] = ContextVar("caller_var")


def request_line(
    provider: str,
    model: str,
    *,
    app_id: str | None = "app-1",
    credentials: dict[str, Any] | None = None,
    prompt_messages: Any = None,
    session_id: str | None = None,
) -> str:
    """Build the line the daemon writes to a plugin's stdin (daemon-contract §8.3)."""
    data = {
        "action": "invoke_llm",
        "credentials": credentials or {},
        "json_schema": None,
        "model": model,
        "model_parameters": {},
        "model_type": "llm",
        "prompt_messages": prompt_messages or [{"role": "user", "content": "hi"}],
        "provider": provider,
        "stop": None,
        "stream": True,
        "tools": None,
        "type": "model",
        "user_id": "user-1",
    }
    envelope = {
        "session_id": session_id or str(uuid.uuid4()),
        "conversation_id": None,
        "message_id": None,
        "app_id": app_id,
        "endpoint_id": None,
        "context": None,
        "event": "request",
        "data": data,
    }
    return json.dumps(envelope)


def start(plugin: InProcessPlugin, line: str, on_frame: Any) -> RunningRequest:
    """Start a request, handing `on_frame` each printed line parsed."""
    return plugin.start(line, lambda text: on_frame(json.loads(text)))


def run(plugin: InProcessPlugin, line: str) -> list[Frame]:
    frames: list[Frame] = []
    running = start(plugin, line, frames.append)
    assert running.join(timeout=10), "the request did not finish within 10 s"
    return frames


def session_types(frames: list[Frame]) -> list[str]:
    return [frame["data"]["type"] if frame["event"] == "session" else "!" for frame in frames]


def texts(frames: list[Frame]) -> list[str]:
    streamed = [frame["data"]["data"] for frame in frames if frame["data"].get("type") == "stream"]
    return [chunk["delta"]["message"]["content"] for chunk in streamed]


def modules_from(directory: Path) -> list[str]:
    prefix = f"{directory}{os.sep}"
    return [
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(prefix)
    ]


@pytest.fixture(scope="module")
def twin_a() -> InProcessPlugin:
    return InProcessPlugin.load(TWIN_A)


@pytest.fixture(scope="module")
def raising() -> InProcessPlugin:
    return InProcessPlugin.load(RAISING)


@pytest.fixture
def thread_exceptions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    caught: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", caught.append)
    yield caught


# Isolation of plugin modules


@pytest.mark.parametrize("order", [(TWIN_A, TWIN_B), (TWIN_B, TWIN_A)], ids=["a-first", "b-first"])
def test_twins_with_the_same_module_names_run_their_own_code(order: tuple[Path, Path]) -> None:
    loaded = {directory: InProcessPlugin.load(directory) for directory in order}

    frames_a = run(loaded[TWIN_A], request_line("twin", "twin-a"))
    frames_b = run(loaded[TWIN_B], request_line("twin", "twin-b"))

    assert texts(frames_a) == ["I am A", "app_id=app-1"]
    assert texts(frames_b) == ["I am B", "app_id=app-1"]
    # Twin B's helper module marks its chunks; twin A's does not.
    assert frames_a[0]["data"]["data"]["system_fingerprint"] is None
    assert frames_b[0]["data"]["data"]["system_fingerprint"] == "twin-b"


def test_loading_leaves_no_plugin_module_in_sys_modules() -> None:
    InProcessPlugin.load(TWIN_A)
    InProcessPlugin.load(TWIN_B)

    assert "models" not in sys.modules
    assert "provider" not in sys.modules
    assert modules_from(PLUGINS) == []


def test_loading_keeps_the_hosts_modules_of_the_same_names(monkeypatch: pytest.MonkeyPatch) -> None:
    host_models = types.ModuleType("models")
    host_models_account = types.ModuleType("models.account")
    host_utils = types.ModuleType("utils")
    monkeypatch.setitem(sys.modules, "models", host_models)
    monkeypatch.setitem(sys.modules, "models.account", host_models_account)
    monkeypatch.setitem(sys.modules, "utils", host_utils)

    twin_a = InProcessPlugin.load(TWIN_A)
    twin_b = InProcessPlugin.load(TWIN_B)

    assert sys.modules["models"] is host_models
    assert sys.modules["models.account"] is host_models_account
    assert sys.modules["utils"] is host_utils
    assert texts(run(twin_a, request_line("twin", "twin-a")))[0] == "I am A"
    assert texts(run(twin_b, request_line("twin", "twin-b")))[0] == "I am B"


def test_a_host_namespace_package_does_not_keep_the_plugins_in_sys_modules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "models").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))

    InProcessPlugin.load(TWIN_B)

    assert modules_from(TWIN_B) == []
    assert "models" not in sys.modules


# Load failures and identity


def copy_plugin(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


def test_load_without_manifest_names_the_directory(tmp_path: Path) -> None:
    directory = copy_plugin(TWIN_A, tmp_path)
    (directory / "manifest.yaml").unlink()

    with pytest.raises(PluginLoadError, match=r"manifest\.yaml is missing") as caught:
        InProcessPlugin.load(directory)
    assert str(directory) in str(caught.value)


def test_load_without_assets_names_the_directory(tmp_path: Path) -> None:
    directory = copy_plugin(TWIN_A, tmp_path)
    shutil.rmtree(directory / "_assets")

    with pytest.raises(PluginLoadError, match=r"_assets/ is missing"):
        InProcessPlugin.load(directory)


def test_load_with_bad_yaml_names_the_cause(tmp_path: Path) -> None:
    directory = copy_plugin(TWIN_A, tmp_path)
    (directory / "provider" / "twin.yaml").write_text("provider: [unclosed\n")

    with pytest.raises(PluginLoadError, match=r"ValueError: Error loading plugin configuration"):
        InProcessPlugin.load(directory)


def test_failed_import_names_the_cause_and_leaves_no_module(tmp_path: Path) -> None:
    directory = copy_plugin(TWIN_A, tmp_path)
    (directory / "utils.py").write_text("import no_such_module_for_the_emulator\n")

    with pytest.raises(PluginLoadError, match=r"ModuleNotFoundError: .*no_such_module") as caught:
        InProcessPlugin.load(directory)

    assert str(directory) in str(caught.value)
    assert modules_from(directory) == []
    assert "models" not in sys.modules


def test_an_entrypoint_missing_from_the_folder_is_a_load_error(tmp_path: Path) -> None:
    directory = copy_plugin(TWIN_A, tmp_path)
    manifest = directory / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("entrypoint: main", "entrypoint: server"))

    with pytest.raises(PluginLoadError) as caught:
        InProcessPlugin.load(directory)

    message = str(caught.value)
    assert str(directory) in message
    assert "meta.runner.entrypoint) 'server'" in message
    assert message.endswith("No module named server")


ENTRYPOINT_LAYOUTS: dict[str, dict[str, str]] = {
    "app": {"app.py": ""},
    "pkg": {"pkg/__init__.py": "", "pkg/__main__.py": ""},
    "bare": {"bare/__init__.py": ""},
    "ns.entry": {"ns/entry.py": ""},
    "ns.gone": {"ns/entry.py": ""},
    "elsewhere": {"sub/elsewhere.py": ""},
    "no-module": {"no-module.py": ""},
}


@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINT_LAYOUTS))
def test_the_entrypoint_check_agrees_with_python_dash_m(entrypoint: str, tmp_path: Path) -> None:
    for relative, text in ENTRYPOINT_LAYOUTS[entrypoint].items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)

    ran = subprocess.run(
        [sys.executable, "-m", entrypoint], cwd=tmp_path, capture_output=True, text=True
    )
    missing = missing_entrypoint(tmp_path, entrypoint)

    assert (missing is None) == (ran.returncode == 0), ran.stderr
    if missing is not None:
        assert missing in ran.stderr


def test_identity_comes_from_the_manifest(twin_a: InProcessPlugin) -> None:
    identity = twin_a.identity

    assert identity.plugin_id == "twins/twin-a"
    assert identity.unique_identifier == f"twins/twin-a:0.0.1@{identity.checksum}"
    assert len(identity.checksum) == 64


def test_checksum_follows_content_but_not_bytecode(tmp_path: Path) -> None:
    directory = copy_plugin(TWIN_A, tmp_path)
    original = directory_checksum(directory)

    (directory / "__pycache__").mkdir(exist_ok=True)
    (directory / "__pycache__" / "utils.cpython-312.pyc").write_bytes(b"bytecode")
    assert directory_checksum(directory) == original

    (directory / "utils.py").write_text('GREETING = "I am C"\n')
    assert directory_checksum(directory) != original


def test_providers_summarise_the_registration(raising: InProcessPlugin) -> None:
    [provider] = raising.providers

    assert provider.name == "raising"
    assert provider.model_types == ("llm",)
    assert sorted(provider.models["llm"]) == ["backwards", "boom", "forever"]


# Sessions


@pytest.mark.parametrize("app_id", ["app-123", None])
def test_app_id_from_the_request_line_reaches_plugin_code(
    twin_a: InProcessPlugin, app_id: str | None
) -> None:
    frames = run(twin_a, request_line("twin", "twin-a", app_id=app_id))

    assert texts(frames) == ["I am A", f"app_id={app_id}"]


def test_concurrent_requests_each_see_their_own_app_id(twin_a: InProcessPlugin) -> None:
    count = 50
    # Every request waits after its first chunk, so all 50 streams are open at once.
    all_open = threading.Barrier(count, timeout=20)
    frames: dict[str, list[Frame]] = {f"app-{index}": [] for index in range(count)}

    def collector(app_id: str) -> Any:
        def on_event(frame: Frame) -> None:
            frames[app_id].append(frame)
            if len(frames[app_id]) == 1:
                all_open.wait()

        return on_event

    running = [
        start(twin_a, request_line("twin", "twin-a", app_id=app_id), collector(app_id))
        for app_id in frames
    ]

    assert all(request.join(timeout=20) for request in running)
    assert {app_id: texts(got)[1] for app_id, got in frames.items()} == {
        app_id: f"app_id={app_id}" for app_id in frames
    }


def test_frames_arrive_in_order_and_end_with_end(twin_a: InProcessPlugin) -> None:
    session_id = str(uuid.uuid4())

    frames = run(twin_a, request_line("twin", "twin-a", session_id=session_id))

    assert session_types(frames) == ["stream", "stream", "end"]
    assert {frame["session_id"] for frame in frames} == {session_id}
    assert [frame["data"]["data"]["delta"]["index"] for frame in frames[:2]] == [0, 1]
    assert frames[-1]["data"] == {"type": "end", "data": {}}


def test_error_inside_the_stream_follows_the_chunks_sent(raising: InProcessPlugin) -> None:
    frames = run(raising, request_line("raising", "boom"))

    assert session_types(frames) == ["stream", "stream", "error", "end"]
    assert texts(frames) == ["one", "two"]
    error = frames[2]["data"]["data"]
    assert error["error_type"] == "InvokeBadRequestError"
    assert error["message"] == "boom after two chunks"
    assert error["args"]["description"] == "boom after two chunks"
    assert "Traceback" in error["args"]["traceback"]


def test_router_type_error_reaches_the_request_it_belongs_to(twin_a: InProcessPlugin) -> None:
    # The SDK's router writes this TypeError to the plugin's default writer (§5.3).
    session_id = str(uuid.uuid4())
    line = request_line("twin", "twin-a", prompt_messages="not-a-list", session_id=session_id)

    frames = run(twin_a, line)

    assert session_types(frames) == ["!", "error", "end"]
    assert frames[0] == {
        "event": "error",
        "session_id": session_id,
        "data": {"error": "prompt_messages must be a list", "error_type": "TypeError"},
    }
    assert frames[1]["data"]["data"]["error_type"] == "AttributeError"


def backwards_reply(frame: Frame, event: str, message: str = "", data: Any = None) -> str:
    """The daemon's `backwards_response` line answering the invoke frame `frame`."""
    request_id = frame["data"]["data"]["backwards_request_id"]
    envelope = {
        "session_id": frame["session_id"],
        "conversation_id": None,
        "message_id": None,
        "app_id": "app-1",
        "endpoint_id": None,
        "context": None,
        "event": "backwards_response",
        "data": {
            "backwards_request_id": request_id,
            "event": event,
            "message": message,
            "data": data,
        },
    }
    return json.dumps(envelope)


def answering(plugin: InProcessPlugin, frames: list[Frame], *replies: tuple[str, Any]) -> Any:
    """An on_frame that answers each invoke frame at once, inside the plugin's own write:
    before the SDK listens for the answer (the reply race)."""

    def on_frame(frame: Frame) -> None:
        frames.append(frame)
        if frame["data"].get("type") == "invoke":
            for event, data in replies:
                message = data if event == "error" else "struct"
                plugin.send(
                    backwards_reply(frame, event, message, None if event == "error" else data)
                )

    return on_frame


def test_a_backwards_call_goes_out_as_an_invoke_frame(raising: InProcessPlugin) -> None:
    frames: list[Frame] = []
    on_frame = answering(raising, frames, ("response", {"data": b"stored".hex()}), ("end", None))

    running = start(raising, request_line("raising", "backwards"), on_frame)

    assert running.join(timeout=5), "the plugin never got its answer"
    invoke = frames[0]["data"]
    assert invoke["type"] == "invoke"
    assert invoke["data"]["type"] == "storage"
    assert invoke["data"]["request"] == {"opt": "get", "key": "key"}
    assert isinstance(invoke["data"]["backwards_request_id"], str)


def test_an_answer_sent_before_the_sdk_listens_still_reaches_the_call(
    raising: InProcessPlugin,
) -> None:
    frames: list[Frame] = []
    on_frame = answering(raising, frames, ("response", {"data": b"stored".hex()}), ("end", None))

    running = start(raising, request_line("raising", "backwards"), on_frame)

    assert running.join(timeout=5), "an answer that came early was lost"
    assert session_types(frames) == ["invoke", "stream", "end"]
    assert texts(frames) == ["stored"]


def test_an_error_answer_is_raised_in_the_plugin(raising: InProcessPlugin) -> None:
    frames: list[Frame] = []
    on_frame = answering(raising, frames, ("error", "permission denied"), ("end", None))

    running = start(raising, request_line("raising", "backwards"), on_frame)

    assert running.join(timeout=5)
    assert session_types(frames) == ["invoke", "error", "end"]
    assert frames[1]["data"]["data"]["message"] == "permission denied"


@pytest.fixture
def impatient(raising: InProcessPlugin) -> Iterator[InProcessPlugin]:
    raising.backwards_timeout = 1
    yield raising
    raising.backwards_timeout = 10


def test_a_call_nobody_answers_fails_after_the_backwards_timeout(
    impatient: InProcessPlugin,
) -> None:
    frames: list[Frame] = []
    started = time.monotonic()

    running = start(impatient, request_line("raising", "backwards"), frames.append)

    assert running.join(timeout=5), "an unanswered call waited more than 5 s"
    assert time.monotonic() - started < 4
    assert session_types(frames) == ["invoke", "error", "end"]
    assert frames[1]["data"]["data"]["message"] == (
        "invocation exited without response after 1 seconds"
    )


def test_the_default_backwards_timeout_is_short(raising: InProcessPlugin) -> None:
    assert raising.backwards_timeout == 10


def test_send_refuses_a_line_that_is_not_a_backwards_response(
    raising: InProcessPlugin,
) -> None:
    with pytest.raises(ValueError, match="not a daemon->plugin line"):
        raising.send("{not json")
    line = request_line("raising", "backwards")
    release = threading.Event()
    running = start(raising, line, lambda frame: release.wait(5))
    try:
        with pytest.raises(ValueError, match="expected a 'backwards_response' line"):
            raising.send(line)
    finally:
        release.set()
        running.join(5)


def test_a_line_for_no_running_session_is_dropped(raising: InProcessPlugin) -> None:
    frame = {"session_id": "gone", "data": {"data": {"backwards_request_id": "r"}}}

    raising.send(backwards_reply(frame, "end"))

    assert raising._sdk_plugin._reader.pending == []


def test_a_session_id_cannot_run_twice_at_once(raising: InProcessPlugin, tmp_path: Path) -> None:
    release = threading.Event()

    def hold_then_leave(frame: Frame) -> None:
        release.wait(timeout=10)
        raise StreamClosed

    line = request_line("raising", "forever", credentials={"closed_marker": str(tmp_path / "m")})
    running = start(raising, line, hold_then_leave)
    try:
        with pytest.raises(ValueError, match="already running"):
            start(raising, line, lambda frame: None)
    finally:
        release.set()
    assert running.join(timeout=5)


def test_a_line_that_is_not_a_request_is_refused(twin_a: InProcessPlugin) -> None:
    with pytest.raises(ValueError, match="not a plugin request line"):
        start(twin_a, "{not json", lambda frame: None)
    with pytest.raises(ValueError, match="expected 'request'"):
        start(twin_a, request_line("twin", "twin-a").replace('"request"', '"nope"'), print)


# Client gone


def start_forever(
    raising: InProcessPlugin, marker: Path, on_event: Any, app_id: str = "app-gone"
) -> RunningRequest:
    line = request_line(
        "raising", "forever", app_id=app_id, credentials={"closed_marker": str(marker)}
    )
    return start(raising, line, on_event)


def test_client_gone_stops_and_closes_the_stream(
    raising: InProcessPlugin, tmp_path: Path, thread_exceptions: list[Any]
) -> None:
    marker = tmp_path / "closed"
    frames: list[Frame] = []

    def client_leaves_after_first_chunk(frame: Frame) -> None:
        frames.append(frame)
        raise StreamClosed

    running = start_forever(raising, marker, client_leaves_after_first_chunk)

    assert running.join(timeout=5), "the plugin kept streaming after the client left"
    assert running.done
    assert session_types(frames) == ["stream"]
    # The plugin's finally ran inside the request's context, which still held its session.
    assert marker.read_text() == "closed app_id=app-gone"
    assert thread_exceptions == []


def test_a_failing_on_event_stops_the_stream_and_is_logged(
    raising: InProcessPlugin,
    tmp_path: Path,
    thread_exceptions: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = tmp_path / "closed"

    def broken_receiver(frame: Frame) -> None:
        raise RuntimeError("receiver bug")

    running = start_forever(raising, marker, broken_receiver)

    assert running.join(timeout=5)
    assert marker.read_text() == "closed app_id=app-gone"
    assert thread_exceptions == []
    assert any("on_event failed" in record.getMessage() for record in caplog.records)


def test_a_frame_is_cut_where_the_daemons_stdout_reader_would_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The daemon's bufio.Scanner holds at most the cap, newline included, in bytes.
    received: list[str] = []
    frames = _RequestFrames("s-1", received.append, "a/b", max_line_bytes=8)

    frames.deliver("é" * 3 + "x")  # 7 bytes and the newline: read
    with caplog.at_level(logging.ERROR), pytest.raises(StreamClosed):
        frames.deliver("é" * 4)  # 8 bytes and the newline: too long
    frames.deliver("x")  # nothing more reaches the session

    assert received == ["éééx"]
    assert "plugin a/b has an error on stdout: bufio.Scanner: token too long" in caplog.text


def test_a_request_runs_in_a_copy_of_the_callers_context(twin_a: InProcessPlugin) -> None:
    from dify_plugin import get_current_session

    caller_value = "set by the caller"
    token = caller_var.set(caller_value)
    seen: list[str | None] = []

    def on_event(frame: Frame) -> None:
        seen.append(caller_var.get(None))
        caller_var.set("set inside the request")

    try:
        start(twin_a, request_line("twin", "twin-a"), on_event).join(timeout=10)
        assert caller_var.get() == caller_value
    finally:
        caller_var.reset(token)

    assert seen[0] == caller_value
    assert get_current_session() is None


# SDK import side effects


def test_sdk_import_did_not_monkey_patch_the_process() -> None:
    import_sdk()
    import gevent.monkey

    assert "dify_plugin" in sys.modules
    assert socket.socket.__module__ == "socket"
    assert threading.Thread.__module__ == "threading"
    assert not gevent.monkey.is_module_patched("socket")
    assert sdk_version().startswith("0.10.")


def test_sdk_import_ignores_the_hosts_dotenv_but_reads_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_REQUEST_TIMEOUT=7\nHTTPX_TIMEOUT=3\n")
    script = (
        "from emulator.runtime import import_sdk\n"
        "import_sdk()\n"
        "from dify_plugin.file.file import _plugin_config as c\n"
        "print(c.MAX_REQUEST_TIMEOUT, c.HTTPX_TIMEOUT)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HTTPX_TIMEOUT": "4"}

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.split() == ["300", "4"]


def test_plugin_logs_go_to_the_emulator_logger_not_stdout(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import_sdk()
    from dify_plugin.config.logger_format import plugin_logger_handler

    plugin_logger = logging.getLogger("tests.plugin_code")
    plugin_logger.addHandler(plugin_logger_handler)
    try:
        with caplog.at_level(logging.INFO, logger="emulator.plugin"):
            plugin_logger.warning("hello from a plugin")
    finally:
        plugin_logger.removeHandler(plugin_logger_handler)

    assert "hello from a plugin" not in capfd.readouterr().out
    forwarded = [record for record in caplog.records if record.name == "emulator.plugin"]
    assert [record.getMessage() for record in forwarded] == ["hello from a plugin"]


def test_two_plugins_with_one_id_are_refused_naming_both_folders(
    twin_a: InProcessPlugin, tmp_path: Path
) -> None:
    copy = tmp_path / "twin_a_again"
    shutil.copytree(TWIN_A, copy, ignore=shutil.ignore_patterns("__pycache__"))
    again = InProcessPlugin.load(copy)

    with pytest.raises(ValueError) as refused:
        PluginSet([twin_a, again])

    assert str(refused.value) == (
        f"two plugins share the id {twin_a.identity.plugin_id!r}: {twin_a.directory} and {copy}"
    )
