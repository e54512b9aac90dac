"""Per-test cost of the daemon emulator's pytest fixtures: setup plus teardown, per test.

    .venv/bin/python bench/reset_cost.py [--tests N]

Runs pytest in this process on a generated project whose tests each send one dispatch, N
tests per fixture, and reads each test's setup and teardown durations from pytest's own
reports. The floor, measured in the same run, is a fixture that only sets and restores the
two environment variables every such fixture sets. The first tests of each group (plugin
load, server start) are left out. Not a pass/fail test: it prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

TARGET_MICROSECONDS = 1000
WARM_UP = 5

PROJECT_TEST = """
import httpx, pytest

TENANT = "4a1c3e52-6f0b-4d8e-9a7c-2b5d8e1f0a93"
BODY = {{"data": {{"provider": "echo", "model_type": "llm", "model": "echo-1",
         "credentials": {{"api_key": "k"}}, "prompt_messages": [], "tools": None}},
        "user_id": "u", "app_id": "a"}}

@pytest.fixture
def floor(monkeypatch):
    monkeypatch.setenv("PLUGIN_DAEMON_URL", "http://localhost:5002")
    monkeypatch.setenv("PLUGIN_DAEMON_KEY", "plugin-api-key")

@pytest.fixture
def bare():
    yield

def send(emulator):
    headers = {{"X-Api-Key": emulator.key, "X-Plugin-ID": "emulator/echo"}}
    httpx.post(emulator.dispatch_url("llm/num_tokens", TENANT), json=BODY, headers=headers)

@pytest.mark.parametrize("n", range({tests}))
def test_bare(bare, n):
    pass

@pytest.mark.parametrize("n", range({tests}))
def test_floor(floor, n):
    pass

@pytest.mark.parametrize("n", range({tests}))
def test_in_process(daemon_emulator, n):
    send(daemon_emulator)

@pytest.mark.parametrize("n", range({tests}))
def test_live(daemon_emulator_live, n):
    send(daemon_emulator_live)
"""

GROUPS = {
    "test_bare": "bare fixture (pytest's own cost)",
    "test_floor": "floor: set and restore two env vars",
    "test_in_process": "daemon_emulator (in process)",
    "test_live": "daemon_emulator_live (uvicorn)",
}


class Durations:
    """Collects setup + teardown seconds per test, grouped by test function."""

    def __init__(self) -> None:
        self.per_test: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when in ("setup", "teardown"):
            self.per_test[report.nodeid] += report.duration

    def by_group(self) -> dict[str, list[float]]:
        groups: dict[str, list[float]] = defaultdict(list)
        for nodeid, seconds in self.per_test.items():
            groups[nodeid.split("::")[1].split("[")[0]].append(seconds * 1e6)
        return {name: values[WARM_UP:] for name, values in groups.items()}


def measure(tests: int) -> dict[str, list[float]]:
    durations = Durations()
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_reset.py").write_text(PROJECT_TEST.format(tests=tests))
        code = pytest.main(
            ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(project)],
            plugins=[durations],
        )
    if code != 0:
        raise SystemExit(f"the benchmark's tests failed (pytest exit {code})")
    return durations.by_group()


def report(groups: dict[str, list[float]]) -> None:
    floor = statistics.median(groups["test_floor"])
    print(f"\n{'fixture':42} {'tests':>6} {'median µs':>10} {'p95 µs':>8} {'x floor':>8}")
    for name, label in GROUPS.items():
        values = sorted(groups[name])
        median = statistics.median(values)
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"{label:42} {len(values):6} {median:10.0f} {p95:8.0f} {median / floor:8.1f}")
    for name in ("test_in_process", "test_live"):
        verdict = "under" if statistics.median(groups[name]) < TARGET_MICROSECONDS else "OVER"
        print(f"{GROUPS[name]}: {verdict} the {TARGET_MICROSECONDS} µs target")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200, help="tests per fixture")
    args = parser.parse_args(argv)
    report(measure(args.tests + WARM_UP))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
