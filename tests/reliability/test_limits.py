"""Limits, against `python -m emulator serve` over loopback: clients that leave mid-stream, a
slow client, a very long stream and a very large body. The server's threads and memory are
read from /proc, what it sent from its journal.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dify_client import collect
from helpers import KEY, TENANT, dispatch_headers, dispatch_url, payload
from support import ServedEmulator, Tally, wait_for

MB = 1024 * 1024


def echo_body(app_id: str = "app-9f3c", **parameters: Any) -> dict[str, Any]:
    body = payload("llm/invoke", with_app_id=True)
    body["app_id"] = app_id
    body["data"]["model_parameters"] = parameters
    return body


def plugin_body(provider: str, model: str, app_id: str, **credentials: Any) -> dict[str, Any]:
    body = echo_body(app_id)
    body["data"].update(provider=provider, model=model, credentials=credentials)
    return body


# Clients that leave --------------------------------------------------------------------------

LEAVERS = 16


@pytest.mark.timeout(120)
def test_clients_that_leave_mid_stream_close_the_plugins_generators(
    served: ServedEmulator, tally: Tally, tmp_path: Path
) -> None:
    served.reset()
    threads_before = served.threads()
    markers = [tmp_path / f"closed-{index}" for index in range(LEAVERS)]
    bodies = [
        plugin_body("raising", "forever", f"app-{index}", closed_marker=str(marker))
        for index, marker in enumerate(markers)
    ]
    plugin_ids = ["tests/raising"] * LEAVERS
    bodies.append(echo_body("app-long", chunks=100_000))
    plugin_ids.append("emulator/echo")

    asyncio.run(leave_early(served.url, bodies, plugin_ids))
    tally.add(requests=len(bodies))

    for index, marker in enumerate(markers):
        wait_for(marker.exists, 10)
        assert marker.read_text() == f"closed app_id=app-{index}"
    served.settle(threads_before)
    journal = served.journal()
    assert journal["total"] == len(bodies)
    assert all(d["client_gone"] and d["timings"]["end"] is not None for d in journal["dispatches"])


async def leave_early(url: str, bodies: list[dict[str, Any]], plugin_ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:

        async def read_then_leave(items: int, body: dict[str, Any], plugin_id: str) -> None:
            content, headers = json.dumps(body), dispatch_headers(plugin_id)
            async with client.stream(
                "POST", dispatch_url("llm/invoke"), content=content, headers=headers
            ) as response:
                lines = response.aiter_lines()
                while items:
                    if await anext(lines):
                        items -= 1

        await asyncio.gather(
            *(
                read_then_leave(1 + index % 5, body, plugin_id)
                for index, (body, plugin_id) in enumerate(zip(bodies, plugin_ids, strict=True))
            )
        )


# A slow client -------------------------------------------------------------------------------

SLOW_CHUNKS = 2000
CHUNK_SIZE = 16 * 1024
"""2000 chunks of 16 KiB: 32 MiB, far more than the socket buffers hold."""


@pytest.mark.timeout(120)
def test_a_slow_client_slows_the_plugin_and_memory_stays_bounded(
    served: ServedEmulator, tally: Tally, tmp_path: Path
) -> None:
    progress = tmp_path / "progress"
    credentials = {"chunks": SLOW_CHUNKS, "size": CHUNK_SIZE, "progress": str(progress)}
    body = json.dumps(plugin_body("faulty", "counts", "app-slow", **credentials)).encode()
    rss_before = served.rss_bytes()

    with slow_connection(served.url) as connection:
        connection.sendall(post_request("tests/faulty", body))
        received = connection.recv(4096)
        wait_for(progress.exists, 10)
        time.sleep(1.0)
        stalled = int(progress.read_text())
        time.sleep(1.0)
        still = int(progress.read_text())
        rss_stalled = served.rss_bytes()
        received += read_to_the_end(connection)
    tally.add(requests=1)

    assert stalled == still < SLOW_CHUNKS / 2, (stalled, still)
    assert rss_stalled - rss_before < 32 * MB, (rss_before, rss_stalled)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.count(b"data: {") == SLOW_CHUNKS
    assert int(progress.read_text()) == SLOW_CHUNKS
    print(f"stalled client: the plugin stopped at {stalled} of {SLOW_CHUNKS} chunks")


def slow_connection(url: str) -> socket.socket:
    """A connection whose receive buffer is small, so the sender's buffers fill quickly."""
    address = httpx.URL(url)
    assert address.host == "127.0.0.1" and address.port is not None
    connection = socket.socket()
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    connection.settimeout(30)
    connection.connect((address.host, address.port))
    return connection


def post_request(plugin_id: str, body: bytes) -> bytes:
    head = (
        f"POST {dispatch_url('llm/invoke', TENANT)} HTTP/1.1\r\nHost: emulator\r\n"
        f"X-Api-Key: {KEY}\r\nX-Plugin-ID: {plugin_id}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_to_the_end(connection: socket.socket) -> bytes:
    """Everything up to the chunked body's last chunk."""
    parts = []
    tail = b""
    while not tail.endswith(b"\r\n0\r\n\r\n"):
        data = connection.recv(1024 * 1024)
        assert data, "the server closed the connection before the end of the stream"
        parts.append(data)
        tail = (tail + data)[-16:]
    return b"".join(parts)


# A very long stream --------------------------------------------------------------------------

LONG = 100_000


@pytest.mark.timeout(300)
def test_a_very_long_stream_arrives_whole_in_bounded_time_and_memory(
    served: ServedEmulator, tally: Tally
) -> None:
    content = json.dumps(echo_body("app-long", chunks=LONG))
    rss = [served.rss_bytes()]
    items, last = 0, ""

    started = time.monotonic()
    with (
        served.client(timeout=60) as client,
        client.stream(
            "POST", dispatch_url("llm/invoke"), content=content, headers=dispatch_headers()
        ) as response,
    ):
        for line in response.iter_lines():
            if line:
                items, last = items + 1, line
                if items % 10_000 == 0:
                    rss.append(served.rss_bytes())
    elapsed = time.monotonic() - started
    tally.add(requests=1)

    assert items == LONG + 2  # the session head, the words, the usage
    assert json.loads(last.removeprefix("data: "))["data"]["delta"]["finish_reason"] == "stop"
    assert elapsed < 240
    assert max(rss) - rss[0] < 64 * MB, rss
    dispatch = served.last_dispatch()
    assert (len(dispatch["items"]), dispatch["items_dropped"]) == (1000, LONG + 2 - 1000)
    print(
        f"{LONG + 2} items in {elapsed:.1f} s; server RSS {rss[0] / MB:.0f}-{max(rss) / MB:.0f} MiB"
    )


# A very large body ---------------------------------------------------------------------------

BIG = 20 * MB


@pytest.mark.timeout(120)
def test_a_20_mb_body_is_bound_and_answered(served: ServedEmulator, tally: Tally) -> None:
    body = echo_body("app-big")
    system = {"role": "system", "content": "y" * BIG, "name": None}
    body["data"]["prompt_messages"].insert(0, system)

    started = time.monotonic()
    with served.client(timeout=60) as client:
        response = client.post(
            dispatch_url("llm/invoke"), content=json.dumps(body), headers=dispatch_headers()
        )
    elapsed = time.monotonic() - started
    tally.add(requests=1)

    chunks, error = collect(response.text)
    assert response.status_code == 200 and error is None
    assert json.loads(chunks[0]["delta"]["message"]["content"])["app_id"] == "app-big"
    assert elapsed < 60
    assert served.health()["status"] == "ok"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_20_mb_body_that_is_not_json_is_the_validators_400(
    served: ServedEmulator, tally: Tally, content_type: str
) -> None:
    headers = {**dispatch_headers(), "Content-Type": content_type}

    with served.client(timeout=60) as client:
        response = client.post(dispatch_url("llm/invoke"), content=b"{" * BIG, headers=headers)
    tally.add(requests=1)

    assert response.status_code == 400
    error = json.loads(response.json()["message"])
    assert error["error_type"] == "PluginDaemonBadRequestError"
    assert served.health()["status"] == "ok"
