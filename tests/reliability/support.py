"""What the reliability tests share: the tally, the servers under test, and waiting."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from emulator.journal import Journal
from emulator.runtime.registry import PluginSet
from helpers import FIXTURE_PLUGINS, KEY

FAULTY = FIXTURE_PLUGINS / "faulty"
RAISING = FIXTURE_PLUGINS / "raising"
IMPATIENT_TIMEOUT = 0.5
"""PLUGIN_MAX_EXECUTION_TIMEOUT of the in-process app, in seconds."""


@dataclass
class Tally:
    """What the suite sent; the terminal summary prints it."""

    requests: int = 0
    fuzz_cases: int = 0
    faults: int = 0
    fuzz_statuses: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, fuzz_cases: int = 0, faults: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.fuzz_cases += fuzz_cases
            self.faults += faults

    def fuzzed(self, status: int) -> None:
        """Count one fuzz case, by the status it was answered with."""
        with self._lock:
            self.fuzz_cases += 1
            self.fuzz_statuses[status] += 1

    def __bool__(self) -> bool:
        return bool(self.requests or self.fuzz_cases or self.faults)

    def __str__(self) -> str:
        text = f"{self.requests} requests, {self.fuzz_cases} fuzz cases, "
        text += f"{self.faults} plugin faults"
        if self.fuzz_statuses:
            statuses = sorted(self.fuzz_statuses.items())
            counts = ", ".join(f"{status}: {n}" for status, n in statuses)
            text += f"\nfuzz cases by the status they were answered with: {counts}"
        return text


TALLY = Tally()


@dataclass
class ServedEmulator:
    """`python -m emulator serve` in a subprocess, and what can be read of it from outside."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, **options)

    def threads(self) -> int:
        return int(self._status("Threads"))

    def rss_bytes(self) -> int:
        return int(self._status("VmRSS").split()[0]) * 1024

    def health(self) -> dict[str, Any]:
        with self.client(timeout=10) as client:
            response = client.get("/health/check")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def journal(self, **query: Any) -> dict[str, Any]:
        with self.client(timeout=60) as client:
            response = client.get("/_emulator/journal", params=query, headers={"X-Api-Key": KEY})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def last_dispatch(self) -> dict[str, Any]:
        (dispatch,) = self.journal(limit=1)["dispatches"]
        return dispatch  # type: ignore[no-any-return]

    def reset(self) -> None:
        with self.client(timeout=10) as client:
            response = client.post("/_emulator/reset", headers={"X-Api-Key": KEY})
        assert response.status_code == 204, response.text

    def settle(self, threads_before: int, seconds: float = 10) -> None:
        """Wait until no dispatch is in flight and no thread is left over."""

        def idle() -> bool:
            quiet = self.health()["active_dispatch_requests"] == 0
            return quiet and self.threads() <= threads_before

        wait_for(idle, seconds, lambda: f"{self.health()}, {self.threads()} threads")

    def _status(self, name: str) -> str:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no {name} in /proc/{self.process.pid}/status")


@dataclass
class InProcessEmulator:
    """The app in this process, on a loopback port, with its journal and plugins at hand."""

    url: str
    app: Any
    journal: Journal
    plugins: PluginSet

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    condition: Callable[[], bool], seconds: float = 10, state: Callable[[], object] = str
) -> None:
    """Poll `condition` until it holds; fail with `state()` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {state()}"
        time.sleep(0.02)
