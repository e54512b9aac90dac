"""`python -m emulator serve` as a user runs it, and the package as pip installs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator.config import DIFY_DEFAULT_KEY, EXAMPLE_PLUGIN, Settings
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {**os.environ, "SERVER_PORT": str(port), "SERVER_KEY": "k"}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--plugin", str(EXAMPLE_PLUGIN)],
        cwd=tmp_path,
        env=env,
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
    assert not any(name.startswith(("tests/", "fixtures/")) for name in names)
    assert not any("__pycache__" in name or "_cache/" in name for name in names)
    assert FIXTURE_PLUGINS.name not in {name.split("/")[0] for name in names}


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--port", "99999"], {}, "port 99999 is not between 1 and 65535"),
        ([], {"SERVER_PORT": "abc"}, "SERVER_PORT='abc' is not a valid int"),
        ([], {"PLUGIN_MAX_EXECUTION_TIMEOUT": "-5"}, "must be positive, not -5.0"),
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
