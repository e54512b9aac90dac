"""`python -m emulator serve` as a user runs it, and the package as pip installs it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator.config import DIFY_DEFAULT_KEY, EXAMPLE_PLUGIN, RuntimeChoice, Settings
from helpers import FIXTURE_PLUGINS, ROOT, dispatch_url, payload


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_defaults_are_the_daemons_and_difys() -> None:
    settings = Settings.from_env({})

    assert (settings.host, settings.port, settings.key) == ("127.0.0.1", 5002, DIFY_DEFAULT_KEY)
    assert settings.plugins == (EXAMPLE_PLUGIN,) and not settings.strict


def test_flags_win_over_env_which_wins_over_defaults() -> None:
    env = {"SERVER_HOST": "0.0.0.0", "SERVER_PORT": "7000", "SERVER_KEY": "from-env"}

    from_env = Settings.from_env(env)
    flagged = Settings.from_env(env, port=7001, key="from-flag", plugins=[Path("p")])

    assert (from_env.host, from_env.port, from_env.key) == ("0.0.0.0", 7000, "from-env")
    assert (flagged.host, flagged.port, flagged.key) == ("0.0.0.0", 7001, "from-flag")
    assert flagged.plugins == (Path("p"),)


def test_the_example_plugin_ships_inside_the_package() -> None:
    assert (EXAMPLE_PLUGIN / "manifest.yaml").is_file()
    assert EXAMPLE_PLUGIN.is_relative_to(Path(sys.modules["emulator"].__file__ or "").parent)


def start_serving(plugin: str, cwd: Path, **env: str) -> tuple[str, subprocess.Popen[str]]:
    """Run `python -m emulator serve --plugin PLUGIN` until its port answers."""
    port = free_port()
    environ = {**os.environ, "SERVER_PORT": str(port), "SERVER_KEY": "k", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--plugin", plugin],
        cwd=cwd,
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/health/check")
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not open its port"
            time.sleep(0.1)
    return url, process


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    url, process = start_serving(str(EXAMPLE_PLUGIN), tmp_path)
    yield url, process
    process.terminate()
    process.wait(10)


def test_serve_opens_the_port_after_loading_and_logs_what_it_serves(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, process = served
    headers = {"X-Api-Key": "k", "X-Plugin-ID": "emulator/echo", "Content-Type": "application/json"}

    response = httpx.post(
        url + dispatch_url("llm/invoke"), json=payload("llm/invoke", True), headers=headers
    )
    process.terminate()
    _, log = process.communicate(timeout=10)

    assert response.status_code == 200 and '"app_id\\": \\"app-9f3c\\"' in response.text
    loaded = log.index("loaded emulator/echo:0.1.0@")
    assert loaded < log.index("Uvicorn running on")
    assert "echo (llm: echo-1, text-embedding: echo-embed" in log
    assert "llm/invoke plugin=emulator/echo app_id=app-9f3c status=200" in log


def test_a_plugin_that_cannot_load_stops_serve_with_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--plugin", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert f"cannot load plugin from {tmp_path / 'missing'}" in result.stderr


def test_the_wheel_carries_the_example_plugin(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]

    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    plugin_files = {
        f"emulator/bundled/echo/{path.relative_to(EXAMPLE_PLUGIN).as_posix()}"
        for path in EXAMPLE_PLUGIN.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert plugin_files <= names
    assert "emulator/py.typed" in names  # the package says it is typed, for mypy users
    assert not any(name.startswith(("tests/", "fixtures/")) for name in names)
    assert not any("__pycache__" in name or "_cache/" in name for name in names)
    assert FIXTURE_PLUGINS.name not in {name.split("/")[0] for name in names}


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--port", "99999"], {}, "port 99999 is not between 1 and 65535"),
        ([], {"SERVER_PORT": "abc"}, "SERVER_PORT='abc' is not a valid int"),
        ([], {"PLUGIN_MAX_EXECUTION_TIMEOUT": "-5"}, "must be positive, not -5.0"),
        (["--runtime", "thread"], {}, "invalid choice: 'thread'"),
        (
            [],
            {"EMULATOR_RUNTIME": "thread"},
            "runtime 'thread' is not one of inprocess, subprocess",
        ),
        (["--plugin", "p::thread"], {}, "plugin 'p::thread': runtime 'thread' is not one of"),
        (["--plugin", "p::inprocess=/py"], {}, "only a subprocess plugin runs under a Python"),
        (["--plugin", "p::subprocess="], {}, "plugin 'p::subprocess=': the Python after '='"),
        (["--plugin", ""], {}, "plugin '': the plugin path is empty"),
        (
            [],
            {"MAX_INVOCATION_TIMEOUT": "abc"},
            "the dify-plugin SDK refuses its settings from the environment: 1 validation error",
        ),
        (
            [],
            {"DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT": "soon"},
            "DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT must be a whole number of milliseconds",
        ),
    ],
)
def test_bad_settings_are_usage_errors_not_tracebacks(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )

    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_the_journal_cap_comes_from_a_flag_or_the_environment() -> None:
    from emulator.runtime.registry import PluginSet
    from emulator.server.app import create_app

    from_env = Settings.from_env({"EMULATOR_JOURNAL_CAP": "50"})
    flagged = Settings.from_env({"EMULATOR_JOURNAL_CAP": "50"}, journal_cap=7)

    assert (from_env.journal_cap, flagged.journal_cap) == (50, 7)
    assert create_app(flagged, PluginSet()).state.journal.cap == 7


def test_the_runtime_comes_from_a_flag_the_environment_or_the_plugins_entry(
    tmp_path: Path,
) -> None:
    for name in ("a", "b"):
        (tmp_path / "folder" / name).mkdir(parents=True)
    env = {
        "EMULATOR_RUNTIME": "subprocess",
        "EMULATOR_PYTHON": "/env/python",
        "EMULATOR_PLUGIN_DIRS": f"{tmp_path / 'folder'}::inprocess:/p::subprocess=/venv:/q",
    }

    from_env = Settings.from_env(env)
    flagged = Settings.from_env(env, runtime="inprocess", python=Path("/flag/python"))

    a, b = tmp_path / "folder" / "a", tmp_path / "folder" / "b"
    assert from_env.plugins == (a, b, Path("/p"), Path("/q"))
    assert [from_env.runtime_for(path) for path in from_env.plugins] == [
        RuntimeChoice("inprocess"),
        RuntimeChoice("inprocess"),
        RuntimeChoice("subprocess", Path("/venv")),
        RuntimeChoice("subprocess", Path("/env/python")),
    ]
    assert flagged.runtime_for(Path("/q")) == RuntimeChoice("inprocess", Path("/flag/python"))
    assert Settings.from_env({}).runtime_for(EXAMPLE_PLUGIN) == RuntimeChoice("inprocess")


def test_serve_runs_a_package_as_a_subprocess_and_cleans_up_on_exit(tmp_path: Path) -> None:
    package = tmp_path / "echo.difypkg"
    with zipfile.ZipFile(package, "w") as archive:
        for path in sorted(EXAMPLE_PLUGIN.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(EXAMPLE_PLUGIN).as_posix())
    url, process = start_serving(f"{package}::subprocess", tmp_path)
    headers = {"X-Api-Key": "k", "X-Plugin-ID": "emulator/echo", "Content-Type": "application/json"}

    response = httpx.post(
        url + dispatch_url("llm/invoke"), json=payload("llm/invoke", True), headers=headers
    )
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=20)

    assert response.status_code == 200 and '"app_id\\": \\"app-9f3c\\"' in response.text
    assert process.returncode == 0
    loaded = re.search(r"unpacked to (\S+)\) in a subprocess \(pid (\d+), ", log)
    assert loaded is not None, log
    assert not Path(loaded[1]).exists()
    assert not Path(f"/proc/{loaded[2]}").exists()
