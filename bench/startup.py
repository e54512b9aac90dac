"""Start-up, in fresh interpreters: import, SDK import, plugin load, app, and the first answered
health check of `python -m emulator serve`, each beside a floor; and the per-test reset of the
pytest fixtures, from bench/reset_cost.py.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.live import ROOT, bare_command, clean_env, emulator_command, free_port, start, stop

PROBE = """
import json, time
started = time.perf_counter()
import emulator.cli
imported = time.perf_counter()
from emulator.runtime import import_sdk
import_sdk()
sdk = time.perf_counter()
from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.runtime.registry import PluginSet
plugins = PluginSet.load([EXAMPLE_PLUGIN])
loaded = time.perf_counter()
from emulator.server.app import create_app
create_app(Settings(), plugins)
built = time.perf_counter()
print(json.dumps({"import": imported - started, "sdk_import": sdk - imported,
                  "plugin_load": loaded - sdk, "app": built - loaded}))
"""
FLOOR_PROBE = """
import json, time
started = time.perf_counter()
import fastapi, uvicorn
print(json.dumps({"import": time.perf_counter() - started}))
"""
RESET = """
import json, sys
from bench.reset_cost import WARM_UP, measure
groups = measure(int(sys.argv[1]) + WARM_UP)
with open(sys.argv[2], "w") as out:
    json.dump(groups, out)
"""


def _python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=clean_env(), check=True, timeout=60)
    return time.perf_counter() - started


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _ready(command_for: Callable[[int], list[str]], repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        port = free_port()
        process, ready = start(command_for(port), port)
        stop(process)
        seconds.append(ready)
    return statistics.median(seconds)


def measure_startup(repeat: int = 3) -> dict[str, float]:
    """Seconds, medians of `repeat` fresh interpreters each."""
    phases = _median_of([json.loads(_python(PROBE)) for _ in range(repeat)])
    floor_import = statistics.median(
        json.loads(_python(FLOOR_PROBE))["import"] for _ in range(repeat)
    )
    interpreter = statistics.median(_wall([sys.executable, "-c", "pass"]) for _ in range(repeat))
    return {
        **phases,
        "fastapi_uvicorn_import": floor_import,
        "interpreter": interpreter,
        "emulator_ready": _ready(emulator_command, repeat),
        "bare_ready": _ready(bare_command, repeat),
    }


def measure_reset(tests: int = 100) -> dict[str, float]:
    """Median microseconds of setup plus teardown per test, per fixture (reset_cost.py)."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "reset.json"
        _python(RESET, str(tests), str(out))
        groups: dict[str, list[float]] = json.loads(out.read_text())
    return {name: statistics.median(values) for name, values in groups.items()}
