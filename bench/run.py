"""Run every benchmark, print the table, write it as JSON.

    .venv/bin/python -m bench [--out bench/results.json]

Each figure stands beside a floor measured in the same run, and the table gives their ratio.
Not a test: nothing passes or fails. About two minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import inprocess, live, startup
from bench.live import ROOT, clean_env

DEFAULT_OUT = ROOT / "bench" / "results.json"
CONCURRENCY = (1, 8, 32)
LOAD_SECONDS = 4.0
LONG = 1000
MB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    section: str
    figure: str
    value: float
    unit: str
    floor: float | None = None
    floor_name: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.floor else self.value / self.floor


class Section:
    """The rows of one part of the table."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[Row] = []

    def add(
        self, figure: str, value: float, unit: str, floor: float | None = None, name: str = ""
    ) -> None:
        self.rows.append(Row(self.title, figure, value, unit, floor, name))


def in_process() -> list[Row]:
    figures = inprocess.measure_dispatch()
    ours, bare, sdk = (figures[name] for name in ("emulator", "bare_route", "sdk_router"))
    section = Section("in process: llm/invoke, 10 items")
    both = "bare route + SDK router"
    for stat in ("p50", "p99"):
        key = f"{stat}_us"
        section.add(f"dispatch {stat}", ours[key], "µs", bare[key] + sdk[key], both)
    section.add("floor: bare FastAPI route p50", bare["p50_us"], "µs")
    section.add("floor: SDK router, no HTTP p50", sdk["p50_us"], "µs")
    return section.rows


def over_loopback() -> list[Row]:
    section = Section("loopback (uvicorn): llm/invoke, 10 items")
    stream = Section(f"loopback: one stream of {LONG} items")
    with live.servers() as (emulator, bare):
        for clients in CONCURRENCY:
            ours = live.load(emulator, 10, clients, LOAD_SECONDS)
            floor = live.load(bare, 10, clients, LOAD_SECONDS)
            name = f"{clients} client{'s' if clients > 1 else ''}"
            for stat in ("p50", "p99"):
                key = f"{stat}_us"
                section.add(f"{name}: {stat}", ours[key] / 1000, "ms", floor[key] / 1000)
            section.add(f"{name}: throughput", ours["per_second"], "req/s", floor["per_second"])
        ours = live.stream_timings(emulator, LONG, repeat=5)
        floor = live.stream_timings(bare, LONG, repeat=5)
    sdk_item = inprocess.sdk_per_item(LONG)
    first, floor_first = ours["first_item_us"] / 1000, floor["first_item_us"] / 1000
    stream.add("time to first item", first, "ms", floor_first, "bare route")
    both = "bare route + SDK router"
    stream.add("per item", ours["per_item_us"], "µs", floor["per_item_us"] + sdk_item, both)
    stream.add("floor: SDK router per item, no HTTP", sdk_item, "µs")
    return section.rows + stream.rows


def start_and_reset() -> list[Row]:
    ms = {name: value * 1000 for name, value in startup.measure_startup().items()}
    section = Section("start-up (fresh interpreter)")
    imports = "import fastapi, uvicorn"
    section.add("import emulator", ms["import"], "ms", ms["fastapi_uvicorn_import"], imports)
    section.add("import the SDK (unpatched)", ms["sdk_import"], "ms")
    section.add("load the example plugin", ms["plugin_load"], "ms")
    section.add("build the app", ms["app"], "ms")
    unavoidable = ms["bare_ready"] + ms["sdk_import"] + ms["plugin_load"]
    parts = "bare route ready + SDK import + plugin load"
    section.add(
        "serve: start to first health check", ms["emulator_ready"], "ms", unavoidable, parts
    )
    section.add("floor: bare route ready", ms["bare_ready"], "ms")

    reset = startup.measure_reset()
    resets = Section("per-test reset (bench/reset_cost.py: setup + teardown)")
    floor, floor_name = reset["test_floor"], "set 2 env vars"
    resets.add("daemon_emulator", reset["test_in_process"], "µs", floor, floor_name)
    resets.add("daemon_emulator_live", reset["test_live"], "µs", floor, floor_name)
    return section.rows + resets.rows


def memory() -> list[Row]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.memory"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    section = Section(f"memory: journal full ({figures['journal_len']} dispatches of 10 items)")
    peak, floor = figures["rss_peak_bytes"] / MB, figures["rss_floor_bytes"] / MB
    section.add("peak RSS", peak, "MiB", floor, "RSS after load and one dispatch")
    section.add("journal, per dispatch", figures["bytes_per_dispatch"] / 1024, "KiB")
    section.add("journal, per further item", figures["bytes_per_item"] / 1024, "KiB")
    worst = figures["worst_case_bytes"] / MB
    section.add(
        f"journal at its caps ({figures['cap']} x {figures['item_cap']} items)", worst, "MiB"
    )
    return section.rows


def machine() -> dict[str, Any]:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    return {
        "nproc": os.cpu_count(),
        "cpu": models[0] if models else platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }


def table(rows: list[Row], about: dict[str, Any]) -> str:
    lines = [
        f"machine: {about['nproc']} cores, {about['cpu']}, Python {about['python']}",
        "",
        "| figure | emulator | floor | x floor |",
        "|---|---|---|---|",
    ]
    section = ""
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"| **{section}** | | | |")
        floor = "" if row.floor is None else f"{_number(row.floor)} {row.unit}"
        if row.floor_name:
            floor += f" ({row.floor_name})"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(f"| {row.figure} | {_number(row.value)} {row.unit} | {floor} | {ratio} |")
    return "\n".join(lines)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = in_process() + over_loopback() + start_and_reset() + memory()
    about = {**machine(), "seconds": round(time.monotonic() - started)}
    print(table(rows, about))
    print(f"\n{about['seconds']} s; written to {args.out}")
    document = {
        "machine": about,
        "rows": [{**asdict(row), "ratio": row.ratio} for row in rows],
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0
