"""Memory with the journal full, in a fresh interpreter:

    python -m bench.memory

Fills the default journal (1000 dispatches) with 10-item llm/invoke dispatches, in process,
and prints JSON: the journal's bytes per dispatch and per further item (tracemalloc: what
clearing the journal frees), and the process's peak RSS beside its RSS once the plugin was
loaded and one dispatch had run (the floor).
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import tracemalloc
from pathlib import Path
from typing import Any

from bench.inprocess import KEY, TENANT, asgi_post, echo_plugin, llm_body
from emulator.config import Settings
from emulator.journal import DEFAULT_ITEM_CAP, Journal
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app

PATH = f"/plugin/{TENANT}/dispatch/llm/invoke"
LONGER = 100
"""Items per dispatch in the second fill, which prices one more item."""
LONGER_DISPATCHES = 50


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def journal_bytes(
    loop: asyncio.AbstractEventLoop, app: Any, journal: Journal, dispatches: int, items: int
) -> float:
    """Bytes the journal holds per dispatch, once `dispatches` of `items` items are in."""
    journal.clear()
    gc.collect()
    tracemalloc.start()
    fill(loop, app, journal, dispatches, items)
    gc.collect()
    full = tracemalloc.get_traced_memory()[0]
    journal.clear()
    gc.collect()
    cleared = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (full - cleared) / dispatches


def fill(
    loop: asyncio.AbstractEventLoop, app: Any, journal: Journal, dispatches: int, items: int
) -> None:
    body = llm_body(items)
    for _ in range(dispatches):
        loop.run_until_complete(asgi_post(app, PATH, body))
    journal.settle()


def main() -> None:
    journal = Journal()
    app = create_app(Settings(key=KEY), PluginSet([echo_plugin()]), journal)
    loop = asyncio.new_event_loop()
    fill(loop, app, journal, 1, 10)
    gc.collect()
    floor = rss_bytes()

    fill(loop, app, journal, journal.cap, 10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    full = len(journal)
    per_dispatch = journal_bytes(loop, app, journal, journal.cap, 10)
    longer = journal_bytes(loop, app, journal, LONGER_DISPATCHES, LONGER)
    per_item = (longer - per_dispatch) / (LONGER - 10)
    worst = journal.cap * (per_dispatch + (DEFAULT_ITEM_CAP - 10) * per_item)
    result = {
        "cap": journal.cap,
        "item_cap": DEFAULT_ITEM_CAP,
        "journal_len": full,
        "bytes_per_dispatch": per_dispatch,
        "bytes_per_item": per_item,
        "worst_case_bytes": worst,
        "rss_floor_bytes": floor,
        "rss_peak_bytes": peak,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
