"""The docker image, without docker: its command run as the image runs it, env-only.

Docker cannot run here, so the tests read the Dockerfile (final stage) for its ENV, CMD and
HEALTHCHECK and run exactly those in subprocesses, with the plugin folder laid out as the
image lays out /plugins: the bundled example linked in, a copy of a fixture plugin mounted
beside it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from emulator.config import EXAMPLE_PLUGIN, Settings
from helpers import FIXTURE_PLUGINS, ROOT, dispatch_headers, dispatch_url, payload

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker" / "docker-compose.yaml"
KEY = "image-key"
GATED = "twins/twin-a"
GATE_CODE = """
import os as _os, time as _time
while not _os.path.exists({gate!r}):
    _time.sleep(0.05)
"""
# Dify's compose default for PLUGIN_DAEMON_KEY (shared/reference/dify-client.md §6).
DIFY_COMPOSE_KEY = "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi"


@dataclass
class Image:
    """What the final stage of the Dockerfile says."""

    base: str
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    user: str = ""


def read_image(path: Path) -> Image:
    instructions = _instructions(path.read_text())
    start = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    image = Image(base=instructions[start][1].split()[0])
    entrypoint: list[str] = []
    for word, rest in instructions[start + 1 :]:
        if word == "ENV":
            image.env.update(_env_pairs(rest))
        elif word == "ENTRYPOINT":
            entrypoint = _exec_form(word, rest)
        elif word == "CMD":
            image.command = _exec_form(word, rest)
        elif word == "HEALTHCHECK":
            _, _, command = rest.partition(" CMD ")
            assert command, f"HEALTHCHECK without CMD: {rest}"
            image.healthcheck = _exec_form("HEALTHCHECK CMD", command)
        elif word == "EXPOSE":
            image.exposed += rest.split()
        elif word == "USER":
            image.user = rest.strip()
    image.command = entrypoint + image.command
    return image


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in logical]


def _env_pairs(rest: str) -> dict[str, str]:
    pairs = shlex.split(rest)
    assert all("=" in pair for pair in pairs), f"ENV in the key=value form only: {rest}"
    return dict(pair.split("=", 1) for pair in pairs)


def _exec_form(word: str, rest: str) -> list[str]:
    command = json.loads(rest)
    assert isinstance(command, list), f"{word} must be in exec (JSON) form: {rest}"
    return command


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image(DOCKERFILE)


def test_the_image_is_small_non_root_and_serves_on_the_daemons_port(image: Image) -> None:
    assert image.base == "python:3.12-slim"
    assert image.user and image.user.split(":")[0] not in ("root", "0")
    assert image.env["SERVER_HOST"] == "0.0.0.0" and image.env["SERVER_PORT"] == "5002"
    assert image.exposed == ["5002"]
    assert image.command[:4] == ["python", "-m", "emulator", "serve"]
    assert image.healthcheck[:2] == ["python", "-c"]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sysconfig.get_path("scripts")) / "hadolint"
    assert hadolint.is_file(), f"{hadolint} is missing: install the dev extras (.[dev])"

    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- the command, run as the image runs it -------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def clean_env() -> dict[str, str]:
    """This process's environment without any setting of ours, or proxies (loopback only)."""
    settings = ("SERVER_", "EMULATOR_", "PLUGIN_")
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(settings) and name.lower() not in proxies
    }
    # `python` in the image is the interpreter the package is installed in; here, this one.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@dataclass
class Container:
    """The image's command running in a subprocess, its log lines read as they come."""

    process: subprocess.Popen[str]
    port: int
    env: dict[str, str]
    log: list[tuple[float, str]] = field(default_factory=list)
    reader: threading.Thread | None = None

    def terminate(self) -> float:
        """Send SIGTERM as `docker stop` does; how long the process took to end."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        elapsed = time.monotonic() - started
        if self.reader is not None:
            self.reader.join(10)
        return elapsed

    def wait_for_log(self, text: str, timeout: float = 60) -> float:
        """When the line holding ``text`` was logged (the line's own time stamp)."""
        deadline = time.monotonic() + timeout
        while True:
            for _, line in list(self.log):
                if text in line:
                    return logged_at(line)
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.text}"
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.text}"
            time.sleep(0.02)

    @property
    def text(self) -> str:
        return "".join(line for _, line in list(self.log))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def logged_at(line: str) -> float:
    stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", line)
    assert stamp, f"a log line without a time stamp: {line!r}"
    return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """/plugins as the image has it (the example linked in by its RUN step), plus a copy of
    twin_a mounted beside it, whose load waits for the file ``gate`` to appear."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "echo").symlink_to(EXAMPLE_PLUGIN, target_is_directory=True)
    shutil.copytree(
        FIXTURE_PLUGINS / "twin_a", plugins / "twin_a", ignore=shutil.ignore_patterns("__pycache__")
    )
    helper = plugins / "twin_a" / "models" / "llm" / "helper.py"
    helper.write_text(helper.read_text() + GATE_CODE.format(gate=str(tmp_path / "gate")))
    return plugins


@pytest.fixture
def container(image: Image, volume: Path, tmp_path: Path) -> Iterator[Container]:
    port = free_port()
    env = {
        **clean_env(),
        **image.env,
        "SERVER_PORT": str(port),
        "SERVER_KEY": KEY,
        "EMULATOR_PLUGIN_DIRS": str(volume),
    }
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    process = subprocess.Popen(
        image.command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Container(process, port, env)
    running.reader = threading.Thread(target=_read_into, args=(process, running.log), daemon=True)
    running.reader.start()
    yield running
    if process.poll() is None:
        process.kill()
    process.wait(10)
    running.reader.join(10)


def _read_into(process: subprocess.Popen[str], log: list[tuple[float, str]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        log.append((time.time(), line))


def run_healthcheck(
    image: Image, container: Container, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        image.healthcheck,
        env={**container.env, **extra_env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_image_command_serves_env_configured_and_turns_healthy_only_once_loaded(
    image: Image, container: Container, tmp_path: Path
) -> None:
    container.wait_for_log("loaded emulator/echo")

    # twin_a is still loading, held at its gate: nothing listens, the health check fails.
    unhealthy = run_healthcheck(image, container)
    assert not is_open(container.port)
    assert unhealthy.returncode != 0 and "Connection refused" in unhealthy.stderr

    (tmp_path / "gate").touch()
    probes: list[tuple[float, bool]] = []
    deadline = time.monotonic() + 60
    while not (probes and probes[-1][1]):
        assert container.process.poll() is None, container.text
        assert time.monotonic() < deadline, f"the port never opened:\n{container.text}"
        opened = is_open(container.port)
        probes.append((time.time(), opened))  # after the probe: never early
        time.sleep(0.02)
    loaded = container.wait_for_log(f"loaded {GATED}:0.0.1@")
    container.wait_for_log("Uvicorn running on http://0.0.0.0:")

    assert [ok for _, ok in probes].count(True) == 1 and probes[-1][0] >= loaded
    assert container.text.index(f"loaded {GATED}") < container.text.index("Uvicorn running")

    # The HEALTHCHECK itself, with proxies set as Dify's compose may set them: it must not
    # use them (they point at a closed loopback port, so using one would fail).
    closed = f"http://127.0.0.1:{free_port()}"
    healthy = run_healthcheck(image, container, HTTP_PROXY=closed, http_proxy=closed)
    assert healthy.returncode == 0, healthy.stderr

    body = payload("llm/invoke", True)
    body["data"].update(provider="twin", model="twin-a")
    with httpx.Client(base_url=container.url, trust_env=False, timeout=30) as client:
        health = client.get("/health/check")
        answer = client.post(
            dispatch_url("llm/invoke"), json=body, headers=dispatch_headers(GATED, KEY)
        )
        refused = client.post(
            dispatch_url("llm/invoke"), json=body, headers=dispatch_headers(GATED, "wrong")
        )

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert {"emulator/echo", GATED} <= {p.split(":")[0] for p in health.json()["plugins"]}
    assert answer.status_code == 200
    assert "I am A" in answer.text and "app_id=app-9f3c" in answer.text
    assert refused.status_code == 401

    elapsed = container.terminate()

    assert container.process.returncode == 0 and elapsed < 5
    assert "Traceback" not in container.text


def test_sigterm_while_plugins_load_ends_the_command_at_once(container: Container) -> None:
    container.wait_for_log("loaded emulator/echo")

    elapsed = container.terminate()

    assert container.process.returncode == 0 and elapsed < 5
    assert "Traceback" not in container.text and "Uvicorn running" not in container.text


# --- the settings the image and its compose file give --------------------------------------


def test_a_plugin_folder_serves_each_plugin_in_it_in_name_order(volume: Path) -> None:
    (volume / ".hidden").mkdir()

    settings = Settings.from_env({"EMULATOR_PLUGIN_DIRS": str(volume)})

    assert settings.plugins == (volume / "echo", volume / "twin_a")


def test_plugin_dirs_take_plugins_and_folders_and_flags_win(tmp_path: Path) -> None:
    twin_b = FIXTURE_PLUGINS / "twin_b"
    env = {"EMULATOR_PLUGIN_DIRS": os.pathsep.join([str(twin_b), str(FIXTURE_PLUGINS)])}

    from_env = Settings.from_env(env)
    flagged = Settings.from_env(env, plugins=[EXAMPLE_PLUGIN])

    assert from_env.plugins == (
        twin_b,
        *sorted(path for path in FIXTURE_PLUGINS.iterdir() if (path / "manifest.yaml").is_file()),
    )
    assert flagged.plugins == (EXAMPLE_PLUGIN,)
    assert Settings.from_env({"EMULATOR_PLUGIN_DIRS": ""}).plugins == (EXAMPLE_PLUGIN,)


@pytest.mark.parametrize(
    ("value", "strict"), [("true", True), ("1", True), ("False", False), ("0", False)]
)
def test_strict_mode_reads_go_booleans(value: str, strict: bool) -> None:
    assert Settings.from_env({"EMULATOR_STRICT": value}).strict is strict


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMULATOR_STRICT": "yes"}, "EMULATOR_STRICT='yes' is not a valid bool"),
        ({"EMULATOR_PLUGIN_DIRS": "{empty}"}, "is not a plugin (no manifest.yaml) and holds no"),
    ],
)
def test_bad_image_settings_are_usage_errors(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    env = {name: value.format(empty=tmp_path) for name, value in env.items()}

    result = subprocess.run(
        [sys.executable, "-m", "emulator", "serve"],
        capture_output=True,
        text=True,
        env={**clean_env(), **env},
        timeout=60,
    )

    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_the_compose_file_stands_in_for_difys_plugin_daemon(image: Image) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["plugin_daemon"]
    environment = {name: _compose_default(value) for name, value in service["environment"].items()}
    mounts = [volume.split(":") for volume in service["volumes"]]

    settings = Settings.from_env({**image.env, **environment})

    assert (settings.host, settings.port, settings.key) == ("0.0.0.0", 5002, DIFY_COMPOSE_KEY)
    assert service["build"]["context"] == ".." and "PLUGIN_DAEMON_URL" in COMPOSE.read_text()
    assert service["init"] is True  # plugin processes exit when their parent is PID 1
    for source, target, *_ in mounts:
        assert target.startswith("/plugins/")
        assert (COMPOSE.parent / source / "manifest.yaml").is_file()


def _compose_default(value: str) -> str:
    """`${NAME:-default}` as compose reads it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


# --- the build context -----------------------------------------------------------------------


def docker_context(root: Path) -> set[str]:
    """The files .dockerignore lets into the build context, as docker matches them: the last
    pattern that matches a file or one of its parent folders decides, `!` letting it in."""
    lines = (root / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    rules = [(p.startswith("!"), _ignore_regex(p.lstrip("!").strip("/"))) for p in patterns]

    def excluded(path: str) -> bool:
        candidates = [path] + [
            "/".join(path.split("/")[:depth]) for depth in range(1, path.count("/") + 1)
        ]
        out = False
        for letting_in, regex in rules:
            if letting_in == out and any(regex.fullmatch(c) for c in candidates):
                out = not letting_in
        return out

    files = set()
    for folder, subfolders, names in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        subfolders[:] = [s for s in subfolders if s not in (".git", ".venv")]
        files |= {prefix + name for name in names if not excluded(prefix + name)}
    return files


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern)
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile(
        "".join(wild.get(part, part if part.startswith("[") else re.escape(part)) for part in parts)
    )


def test_the_build_context_is_the_package_alone() -> None:
    context = docker_context(ROOT)
    tracked = subprocess.run(
        ["git", "ls-files", "pyproject.toml", "README.md", "emulator"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert set(tracked) <= context
    assert {"emulator/bundled/echo/manifest.yaml", "emulator/bundled/echo/main.py"} <= context
    assert not {
        name
        for name in context
        if name.startswith(("tests/", "fixtures/", "build/", "docker/", "contracts/"))
        or "__pycache__" in name
        or name.endswith(".pyc")
    }
