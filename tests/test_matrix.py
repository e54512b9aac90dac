"""The SDK version matrix: environments, the SDK probe, the HTTP checks, the table, the command.

The tests marked `sdk_environments` create (once, then reuse) one virtual environment per
dify-plugin version under ~/.cache/dify-plugin-emulator (or $EMULATOR_SDK_CACHE), which
needs PyPI the first time; everything else they do stays on this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from emulator import matrix
from emulator._matrix_checks import PROBE_BODIES, classify
from emulator.config import EXAMPLE_PLUGIN
from emulator.contract import envelopes
from emulator.contract.envelopes import ErrorType
from emulator.runtime import PluginIdentity
from helpers import FIXTURE_PLUGINS, ROOT

# Creating an environment downloads and installs the SDK; later runs reuse it.
sdk_environments = pytest.mark.timeout(900)


@pytest.mark.parametrize("version", ["0.10.2", "0.7.4", "1.0.0rc1"])
def test_a_release_number_is_accepted(version: str) -> None:
    assert matrix.checked_version(version) == version


@pytest.mark.parametrize("version", ["--index-url=http://x", "0.10.2;rm", "../0.9.1", "latest", ""])
def test_anything_but_a_release_number_is_refused(version: str) -> None:
    with pytest.raises(matrix.MatrixError, match="expected a release number"):
        matrix.checked_version(version)


def test_a_ready_environment_is_reused_without_running_anything(tmp_path: Path) -> None:
    ready = tmp_path / "sdk-0.9.1"
    ready.mkdir()
    (ready / matrix.READY_MARKER).write_text("0.9.1\n")

    environment = matrix.provision("0.9.1", tmp_path, base_python="/nonexistent/python")

    assert environment.directory == ready
    assert environment.python == ready / "bin" / "python"


def test_a_failed_creation_names_the_version_and_leaves_nothing_ready(tmp_path: Path) -> None:
    half_built = tmp_path / "sdk-0.9.1"
    half_built.mkdir()
    (half_built / "leftover").write_text("from an interrupted run")

    with pytest.raises(matrix.MatrixError, match=r"dify-plugin 0\.9\.1: .* exited with 1"):
        matrix.provision("0.9.1", tmp_path, base_python=shutil.which("false") or "false")

    assert not (half_built / "leftover").exists()
    assert not (half_built / matrix.READY_MARKER).exists()


def test_a_version_that_cannot_be_set_up_is_a_row_with_its_reason(tmp_path: Path) -> None:
    found = matrix.run_matrix(EXAMPLE_PLUGIN, ["0.9.1"], tmp_path, base_python="false")

    report = found.versions[0]
    assert report.setup_error.startswith("dify-plugin 0.9.1: `false -m venv")
    assert report.checks is None
    lines = matrix.render(found).splitlines()
    assert next(line for line in lines if line.startswith("environment")).endswith("failed [1]")
    assert next(line for line in lines if line.startswith("loads the plugin")).endswith(" -")
    assert any(line.startswith("[1] 0.9.1: dify-plugin 0.9.1: `false") for line in lines)


def test_an_sdk_that_cannot_be_imported_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTALL_METHOD", "bogus")

    facts = matrix.probe_sdk(matrix.SdkEnvironment("0.10.2", Path(sys.prefix)))

    assert facts["import_error"].startswith("ValidationError: ")
    assert "routes" not in facts


def test_the_probe_reads_the_router_table_of_the_sdk_it_runs_under() -> None:
    this_sdk = matrix.SdkEnvironment("0.10.2", Path(sys.prefix))

    facts = matrix.probe_sdk(this_sdk, EXAMPLE_PLUGIN)

    routes = {(r["type"], r["action"]): r for r in facts["routes"]}
    invoke_llm = routes[("model", "invoke_llm")]
    assert invoke_llm["method"] == "invoke_llm"
    assert invoke_llm["request_class"] == "ModelInvokeLLMRequest"
    assert "json_schema" in invoke_llm["fields"]
    assert routes[("model", "invoke_speech2text")]["method"] == "invoke_speech_to_text"
    assert {"type": "tool", "action": "get_tool_runtime_parameters"} in facts["declared_unrouted"]
    assert ("tool", "get_tool_runtime_parameters") not in routes
    assert "get_current_session" in facts["exports"]
    assert facts["plugin"]["providers"][0]["models"]["llm"] == ["echo-1"]


def _is_model(path: str) -> bool:
    return PROBE_BODIES[path][0] not in {
        "tool",
        "tool provider",
        "tool action",
        "agent strategy",
        "datasource",
        "trigger",
        "other",
    }


def test_the_probe_takes_a_plugin_folder_relative_to_the_working_directory() -> None:
    probe = [sys.executable, "-I", matrix.sdk_probe.__file__, "fixtures/plugins/tool_echo"]

    done = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True, check=True)

    plugin = json.loads(done.stdout)["plugin"]
    assert plugin["name"] == "tool_echo"
    assert plugin["tools"] == {"tool_echo": ["echo_ids", "blob", "storage_get"]}
    assert plugin["providers"] == []


def _report(version: str, exports: list[str] = ()) -> matrix.VersionReport:  # type: ignore[assignment]
    return matrix.VersionReport(version, facts={"exports": list(exports)})


@pytest.mark.parametrize(
    ("cause", "explanation"),
    [
        (
            "ImportError: cannot import name 'get_current_session' from 'dify_plugin' (/x.py)",
            "needs >= 0.10.0 for get_current_session",
        ),
        (
            "ModuleNotFoundError: No module named 'dify_plugin.core.session_context'",
            "needs >= 0.10.0 for session_context",
        ),
        (
            "ImportError: cannot import name 'NewThing' from 'dify_plugin' (/x.py)",
            "needs NewThing, which dify-plugin 0.11.0 has",
        ),
        (
            "ImportError: cannot import name 'LLMPollingResult' from "
            "'dify_plugin.entities.model.llm' (/x.py)",
            "dify-plugin 0.7.4 has no LLMPollingResult",
        ),
        (
            "ModuleNotFoundError: No module named 'openai'",
            "needs 'openai' installed; the matrix installs dify-plugin only",
        ),
        (
            "ValueError: Error loading plugin configuration: 1 validation error for "
            "ModelProviderConfiguration\nfeatures.0\n  Input should be 'tool-call' or 'vision' "
            "[type=enum, input_value='polling', input_type=str]",
            "does not know 'polling' at features.0",
        ),
        ("RuntimeError: boom\nsecond line", "second line"),
    ],
)
def test_a_load_failure_is_explained(cause: str, explanation: str) -> None:
    old, new = _report("0.7.4"), _report("0.11.0", ["NewThing"])

    assert matrix.explain_load_failure(cause, old, [old, new]) == explanation


def test_the_plugins_own_pin_says_which_versions_it_allows(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("openai>=1\nDify_Plugin >=0.10,<0.11  # SDK\n")

    pin = matrix.sdk_requirement(tmp_path)

    assert pin == "Dify_Plugin >=0.10,<0.11"
    assert matrix.requirement_allows(pin, "0.10.2") is True
    assert matrix.requirement_allows(pin, "0.9.1") is False
    assert matrix.requirement_allows(None, "0.9.1") is None
    assert matrix.sdk_requirement(tmp_path / "nowhere") is None


class _EndsAtOnce:
    """A runtime plugin that answers every request as an SDK without a route for it does."""

    identity = PluginIdentity("matrix", "ends-at-once", "0.0.1", "0" * 64)
    start_may_wait = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.providers: list[Any] = []
        self.closed = False

    def request_rejection(self, line: str) -> None:
        return None

    def start(self, line: str, on_event: Any) -> Any:
        session_id = json.loads(line)["session_id"]
        end = {"event": "session", "session_id": session_id, "data": {"type": "end", "data": {}}}
        on_event(json.dumps(end))
        return argparse.Namespace(done=True, join=lambda timeout=None: True)

    def send(self, line: str) -> None:
        raise AssertionError(f"no call back into Dify expected, got {line}")

    def close(self) -> None:
        self.closed = True


def test_a_bare_end_is_told_apart_from_an_answer_over_http(tmp_path: Path) -> None:
    plugin = _EndsAtOnce(tmp_path)

    declared = {"providers": [{"name": "p", "models": {"llm": ["m"]}}], "tools": {"t": ["x"]}}

    checks = matrix.check_plugin(tmp_path, Path("python"), {}, lambda directory, python: plugin)
    named = matrix.check_plugin(tmp_path, Path("python"), declared, lambda d, p: _EndsAtOnce(d))

    outcomes = {outcome.route: outcome.outcome for outcome in checks.routes}
    assert outcomes["llm/invoke"] == "bare end"
    assert outcomes["model/polling/start"] == "bare end"
    assert {outcomes[path] for path in PROBE_BODIES} == {"bare end"}
    assert checks.app_id == "n/a (the plugin declares no llm model)"
    assert checks.tool_app_id == "n/a (the plugin declares no tool)"
    assert named.app_id.startswith("not observable (llm/invoke: HTTP 200")
    assert named.tool_app_id.startswith("not observable (tool/invoke: HTTP 200")
    assert plugin.closed


def test_a_loader_that_fails_is_a_row_not_a_crash(tmp_path: Path) -> None:
    def refuse(directory: Path, python: Path) -> Any:
        raise RuntimeError("its process exited with code 1")

    checks = matrix.check_plugin(tmp_path, Path("python"), {}, refuse)

    assert not checks.loads
    assert checks.load_error == "RuntimeError: its process exited with code 1"


@pytest.fixture(scope="module")
def echo_matrix() -> matrix.Matrix:
    return matrix.run_matrix(EXAMPLE_PLUGIN, ["0.9.1", "0.10.2"])


@sdk_environments
def test_echo_loads_under_0_10_2_and_sees_the_app_id(echo_matrix: matrix.Matrix) -> None:
    newest = echo_matrix.versions[1]

    assert newest.facts["sdk_version"] == "0.10.2"
    assert newest.checks is not None and newest.checks.loads
    assert newest.checks.app_id == "yes"
    outcomes = {o.route: o.outcome for o in newest.checks.routes}
    model_routes = [path for path in PROBE_BODIES if _is_model(path)]
    assert len(model_routes) == 16
    assert {outcomes[path] for path in model_routes} == {"answered"}
    assert outcomes["tool/get_runtime_parameters"] == "bare end"
    assert outcomes["tool/invoke"] == "plugin error"


@sdk_environments
def test_echo_fails_under_0_9_1_and_the_table_says_why(echo_matrix: matrix.Matrix) -> None:
    older = echo_matrix.versions[0]

    assert older.facts["sdk_version"] == "0.9.1"
    assert older.checks is not None and not older.checks.loads
    assert "cannot import name 'get_current_session'" in older.checks.load_error
    assert older.explanation == "needs >= 0.10.0 for get_current_session"


@sdk_environments
def test_the_table_shows_what_differs_between_versions(echo_matrix: matrix.Matrix) -> None:
    lines = matrix.render(echo_matrix).splitlines()

    def row(label: str) -> list[str]:
        found = next(line for line in lines if line.startswith(label))
        return found[len(label) :].split()

    assert row("dify-plugin") == ["0.9.1", "0.10.2"]
    assert row("get_current_session") == ["no", "yes"]
    assert row("requirements.txt (dify_plugin>=0.10,<0.11) allows it") == ["no", "yes"]
    loads = next(line for line in lines if line.startswith("loads the plugin"))
    assert "no: needs >= 0.10.0 for get_current_session [1]" in loads
    assert row("app_id reaches model code") == ["-", "yes"]
    assert row("  model ") == ["16", "16"]
    assert row("  model/invoke_text_embedding: input_type") == ["no", "yes"]
    assert row("  llm/invoke") == ["-", "answered"]
    assert row("  tool/get_runtime_parameters") == ["-", "bare", "end"]
    assert any(line.startswith("[1] 0.9.1: ImportError: cannot import name") for line in lines)


@sdk_environments
def test_a_tool_sees_the_app_id_under_0_9_1_too() -> None:
    found = matrix.run_matrix(FIXTURE_PLUGINS / "tool_echo", ["0.9.1", "0.10.2"])

    for report in found.versions:
        assert report.checks is not None and report.checks.loads
        assert report.checks.tool_app_id == "yes"
        assert report.checks.app_id == "n/a (the plugin declares no llm model)"
        outcomes = {o.route: o.outcome for o in report.checks.routes}
        assert outcomes["tool/invoke"] == "answered"
        assert outcomes["tool/get_runtime_parameters"] == "bare end"
    table = matrix.render(found)
    assert "app_id reaches tool code" in table
    assert matrix.pinned_versions_failing(found) == []


@sdk_environments
def test_the_json_carries_the_same_findings(echo_matrix: matrix.Matrix) -> None:
    document = json.loads(json.dumps(matrix.as_json(echo_matrix)))

    older, newest = document["versions"]
    assert (older["loads"], newest["loads"]) == (False, True)
    assert older["explanation"] == "needs >= 0.10.0 for get_current_session"
    assert newest["app_id"] == "yes"
    assert (older["requirement_allows"], newest["requirement_allows"]) == (False, True)


def _tolerant_echo(tmp_path: Path) -> Path:
    """The echo plugin with a fallback for SDKs that lack get_current_session."""
    plugin = tmp_path / "tolerant_echo"
    shutil.copytree(EXAMPLE_PLUGIN, plugin, ignore=shutil.ignore_patterns("__pycache__"))
    common = plugin / "models" / "common.py"
    common.write_text(
        common.read_text().replace(
            "from dify_plugin import get_current_session\n",
            "try:\n    from dify_plugin import get_current_session\n"
            "except ImportError:\n    def get_current_session():\n        return None\n",
        )
    )
    (plugin / "requirements.txt").write_text("dify_plugin>=0.7,<0.11\n")
    return plugin


@sdk_environments
def test_an_older_sdk_runs_a_tolerant_plugin_without_the_app_id(tmp_path: Path) -> None:
    plugin = _tolerant_echo(tmp_path)

    found = matrix.run_matrix(plugin, ["0.7.4", "0.9.1"])

    oldest, older = found.versions
    assert older.checks is not None and older.checks.loads
    assert older.checks.app_id == "no (plugin code saw app_id null)"
    assert oldest.checks is not None and not oldest.checks.loads
    assert oldest.explanation == "does not know 'polling' at features.0"
    routed_0_7_4 = {(r["type"], r["action"]) for r in oldest.facts["routes"]}
    assert ("model", "start_polling") not in routed_0_7_4
    table = matrix.render(found).splitlines()
    start_polling = next(line for line in table if line.startswith("    start_polling"))
    assert start_polling.split()[1:] == ["no", "(bare", "end)", "yes"]
    assert matrix.pinned_versions_failing(found) == ["0.7.4"]


def _command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    matrix.add_matrix_command(parser.add_subparsers(dest="command"))
    return matrix.matrix_command(parser.parse_args(argv))


def test_the_command_refuses_a_folder_without_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _command(["matrix", str(tmp_path), "--sdk", "0.10.2"]) == 2
    assert "no manifest.yaml, not a plugin folder or .difypkg" in capsys.readouterr().err


def test_the_command_refuses_a_version_that_is_no_release_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _command(["matrix", str(EXAMPLE_PLUGIN), "--sdk", "0.10.2", "--sdk", "x"]) == 2
    assert "'x': expected a release number" in capsys.readouterr().err


@sdk_environments
def test_the_command_takes_a_difypkg_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "echo.difypkg"
    with zipfile.ZipFile(package, "w") as archive:
        for path in sorted(EXAMPLE_PLUGIN.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(EXAMPLE_PLUGIN).as_posix())

    status = _command(["matrix", str(package), "--sdk", "0.10.2", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["plugin"] == str(package)
    assert document["versions"][0]["loads"] is True


@sdk_environments
def test_the_command_prints_json_and_passes_when_the_pinned_version_loads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = _command(["matrix", str(EXAMPLE_PLUGIN), "--sdk", "0.10.2", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["versions"][0]["app_id"] == "yes"


@pytest.mark.parametrize(
    ("status", "item", "outcome"),
    [
        (400, envelopes.error(ErrorType.BAD_REQUEST, "Key: 'x' Error:..."), "refused"),
        (200, envelopes.error(ErrorType.INTERNAL, "killed by timeout"), "timed out"),
        (200, envelopes.error(ErrorType.INTERNAL, "no proper instance"), "daemon error"),
        (200, envelopes.stream_error("unmarshal_error", "unmarshal json failed"), "bad reply"),
        (200, envelopes.stream_error("invoke_dify_error", "invoke dify failed"), "bad reply"),
        (200, envelopes.plugin_error("ValueError", "no such tool", {}), "plugin error"),
        (200, envelopes.success('{"result":true}'), "answered"),
    ],
)
def test_each_kind_of_answer_gets_its_own_outcome(status: int, item: str, outcome: str) -> None:
    assert classify("tool/invoke", status, [json.loads(item)]).outcome == outcome
