"""Over loopback: `python -m emulator serve` and the bare route under the same uvicorn, each in
a subprocess on 127.0.0.1. Load comes from lean keep-alive connections of this process; the
long stream is read with httpx, Dify's client.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.inprocess import KEY, TENANT, llm_body, summary
from emulator.config import EXAMPLE_PLUGIN

START_SECONDS = 60.0
ROOT = Path(__file__).resolve().parents[1]
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    """A server under test and the request it is asked, for a stream of `items` items."""

    url: str
    path: str
    headers: dict[str, str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env() -> dict[str, str]:
    """No settings of ours, no proxies: the servers read only their command line."""
    settings = ("SERVER_", "EMULATOR_", "PLUGIN_")
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(settings) and name.lower() not in proxies
    }


def emulator_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "emulator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--key",
        KEY,
        "--plugin",
        str(EXAMPLE_PLUGIN),
    ]


def bare_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.bare", str(port)]


def start(command: list[str], port: int) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server; return it and the seconds until its health check first answered."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/health/check"
    with httpx.Client(trust_env=False, timeout=5) as client:
        while True:
            try:
                if client.get(url).status_code == 200:
                    return process, time.perf_counter() - started
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.perf_counter() - started > START_SECONDS:
                stop(process)
                raise RuntimeError(f"{command} did not start")
            time.sleep(0.005)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@contextmanager
def servers() -> Iterator[tuple[Target, Target]]:
    """The emulator and the bare route, both serving."""
    emulator_port, bare_port = free_port(), free_port()
    emulator, _ = start(emulator_command(emulator_port), emulator_port)
    try:
        bare, _ = start(bare_command(bare_port), bare_port)
        try:
            yield (
                Target(
                    f"http://127.0.0.1:{emulator_port}",
                    f"/plugin/{TENANT}/dispatch/llm/invoke",
                    {**JSON, "X-Api-Key": KEY, "X-Plugin-ID": "emulator/echo"},
                ),
                Target(f"http://127.0.0.1:{bare_port}", "/stream/{items}", JSON),
            )
        finally:
            stop(bare)
    finally:
        stop(emulator)


class Connection:
    """One keep-alive HTTP/1.1 connection, as lean as a client gets: the load generator shares
    the machine with the server, and httpx alone would be the bottleneck at 32 clients."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        address = httpx.URL(url)
        assert address.host == "127.0.0.1" and address.port is not None
        return cls(*await asyncio.open_connection(address.host, address.port))

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status = int((await self._reader.readline()).split()[1])
        length, chunked = 0, False
        while (line := await self._reader.readline()) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            chunked = chunked or (name.lower() == "transfer-encoding" and "chunked" in value)
        if not chunked:
            return status, await self._reader.readexactly(length)
        parts = []
        while size := int((await self._reader.readline()).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        await self._reader.readexactly(2)
        return status, b"".join(parts)

    def close(self) -> None:
        self._writer.close()


async def _load(
    target: Target, items: int, concurrency: int, seconds: float
) -> tuple[list[float], float]:
    """Requests from `concurrency` clients for `seconds`: each latency, and the elapsed time."""
    body = llm_body(items)
    path = target.path.format(items=items)
    latencies: list[float] = []
    connections = [await Connection.open(target.url) for _ in range(concurrency)]

    async def one_client(connection: Connection, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            status, answer = await connection.post(path, target.headers, body)
            if status != 200 or answer.count(b"data: ") != items:
                raise RuntimeError(f"{target.url}: {status} {answer[:500]!r}")
            if record:
                latencies.append(time.perf_counter() - started)

    try:
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(one_client(c, warm, False) for c in connections))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(one_client(c, until, True) for c in connections))
        return latencies, time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()


def load(target: Target, items: int, concurrency: int, seconds: float) -> dict[str, float]:
    latencies, elapsed = asyncio.run(_load(target, items, concurrency, seconds))
    return {**summary(latencies), "per_second": len(latencies) / elapsed}


def stream_timings(target: Target, items: int, repeat: int) -> dict[str, float]:
    """Time to the first item, and to each further one, of a long stream (medians)."""
    body = llm_body(items)
    path = target.path.format(items=items)
    firsts, per_item = [], []
    with httpx.Client(base_url=target.url, timeout=60, trust_env=False) as client:
        for attempt in range(repeat + 1):
            started = time.perf_counter()
            first = last = 0.0
            count = 0
            with client.stream("POST", path, content=body, headers=target.headers) as response:
                for line in response.iter_lines():
                    if line:
                        count += 1
                        last = time.perf_counter()
                        first = first or last
            if count != items:
                raise RuntimeError(f"{target.url}: {count} items instead of {items}")
            if attempt:  # the first is a warm-up
                firsts.append(first - started)
                per_item.append((last - first) / (items - 1))
    firsts.sort()
    per_item.sort()
    return {
        "first_item_us": firsts[len(firsts) // 2] * 1e6,
        "per_item_us": per_item[len(per_item) // 2] * 1e6,
    }
