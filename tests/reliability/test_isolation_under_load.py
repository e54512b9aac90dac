"""Isolation under load: 10,000 streamed dispatches from 64 concurrent clients over loopback.

Each request carries its own random app_id, user_id and prompt word. The example plugin's first
item is the session it saw (get_current_session()), so every answer says whose request the
plugin ran; the journal says the same from the server's side. Nothing may be lost, doubled or
handed to the wrong session.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dify_client import collect
from emulator.testing._live import LiveServer
from helpers import dispatch_headers, dispatch_url, payload
from support import InProcessEmulator, ServedEmulator, Tally

DISPATCHES = 10_000
CLIENTS = 64
ALPHABET = "abcXYZ019-_.:/ \"\\'<>&é中文🙂\u2028"


@dataclass(frozen=True)
class Sent:
    app_id: str
    user_id: str
    word: str

    def body(self) -> dict[str, Any]:
        body = payload("llm/invoke")
        body["app_id"], body["user_id"] = self.app_id, self.user_id
        body["data"]["prompt_messages"] = [{"role": "user", "content": self.word, "name": None}]
        return body


@dataclass(frozen=True)
class Seen:
    app_id: str
    user_id: str
    session_id: str
    words: list[str]
    finished: bool


def random_requests(rng: random.Random, count: int) -> list[Sent]:
    app_ids: set[str] = set()
    while len(app_ids) < count:
        app_ids.add("".join(rng.choices(ALPHABET, k=rng.randint(1, 40))))
    return [
        Sent(app_id, f"user-{index}-{rng.getrandbits(32):08x}", f"word{index}")
        for index, app_id in enumerate(sorted(app_ids, key=lambda _: rng.random()))
    ]


def seen_in(text: str) -> Seen:
    chunks, error = collect(text)
    assert error is None, error
    head, *rest = (chunk["delta"]["message"]["content"] for chunk in chunks)
    session = json.loads(head)
    return Seen(
        app_id=session["app_id"],
        user_id=session["user_id"],
        session_id=session["session_id"],
        words=[word for word in rest if word],
        finished=chunks[-1]["delta"]["finish_reason"] == "stop",
    )


async def send_all(url: str, requests: list[Sent]) -> list[Seen | BaseException]:
    results: list[Seen | BaseException] = [RuntimeError("not sent")] * len(requests)
    pending = iter(enumerate(requests))
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    timeout = httpx.Timeout(60)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=timeout, trust_env=False
    ) as client:

        async def one_client() -> None:
            for index, sent in pending:
                try:
                    response = await client.post(
                        dispatch_url("llm/invoke"),
                        content=json.dumps(sent.body()),
                        headers=dispatch_headers(),
                    )
                    assert response.status_code == 200, response.text
                    assert response.headers["content-type"] == "text/event-stream"
                    results[index] = seen_in(response.text)
                except Exception as error:
                    results[index] = error

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return results


@pytest.mark.timeout(600)
def test_every_plugin_sees_the_app_id_of_its_own_request(
    served: ServedEmulator, tally: Tally
) -> None:
    seed = random.randrange(2**32)
    requests = random_requests(random.Random(seed), DISPATCHES)
    served.reset()
    threads_before = served.threads()

    started = time.monotonic()
    results = asyncio.run(send_all(served.url, requests))
    elapsed = time.monotonic() - started
    tally.add(requests=DISPATCHES)

    pairs = zip(requests, results, strict=True)
    failures = [(sent, seen) for sent, seen in pairs if not ok(sent, seen)]
    assert not failures, f"seed {seed}: {len(failures)} of {DISPATCHES} wrong, e.g. {failures[:3]}"
    session_ids = Counter(seen.session_id for seen in results if isinstance(seen, Seen))
    assert len(session_ids) == DISPATCHES, session_ids.most_common(3)
    print(f"{DISPATCHES} dispatches from {CLIENTS} clients in {elapsed:.1f} s (seed {seed})")

    journal = served.journal()
    assert (journal["total"], journal["dropped"]) == (DISPATCHES, 0)
    recorded = journal["dispatches"]
    assert Counter(d["session"]["app_id"] for d in recorded) == Counter(r.app_id for r in requests)
    assert all(d["session"]["app_id"] == d["wrapper"]["app_id"] for d in recorded)
    assert {d["session"]["session_id"] for d in recorded} == set(session_ids)
    assert all(d["status"] == 200 and not d["client_gone"] for d in recorded)
    served.settle(threads_before)


def ok(sent: Sent, seen: Seen | BaseException) -> bool:
    if isinstance(seen, BaseException):
        return False
    mine = (sent.app_id, sent.user_id, [sent.word], True)
    return (seen.app_id, seen.user_id, seen.words, seen.finished) == mine


# Found by the test above: uvicorn closes a keep-alive connection after 5 idle seconds, the
# same expiry httpx gives its pooled connections, so under load a pooled client (Dify's)
# now and then sent a request on a connection the server was closing, and got a ReadError.
# The daemon's net/http server sets no IdleTimeout or ReadTimeout: it never closes one.
IDLE_SECONDS = 6.0


def test_an_idle_keep_alive_connection_stays_open_as_the_daemons_does(
    served: ServedEmulator, impatient: InProcessEmulator, tally: Tally
) -> None:
    live = LiveServer(impatient.app)
    try:
        urls = [served.url, live.url]
        connections = [keep_alive_connection(url) for url in urls]
        firsts = [exchange(connection) for connection in connections]
        time.sleep(IDLE_SECONDS)
        seconds = [exchange(connection) for connection in connections]
    finally:
        live.close()
    tally.add(requests=4)

    assert firsts == [b"HTTP/1.1 200 OK"] * 2
    assert seconds == [b"HTTP/1.1 200 OK"] * 2, dict(zip(urls, seconds, strict=True))


def keep_alive_connection(url: str) -> socket.socket:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert host == "127.0.0.1" and port is not None
    return socket.create_connection((host, port), timeout=10)


def exchange(connection: socket.socket) -> bytes:
    """One health check on a kept-alive connection: its status line, or what went wrong."""
    try:
        connection.sendall(b"GET /health/check HTTP/1.1\r\nHost: emulator\r\n\r\n")
        answer = connection.recv(65536)
        if not answer:
            return b"closed by the server"
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if b"content-length" in line
        )
        while len(body) < length:
            body += connection.recv(65536)
    except (OSError, StopIteration) as error:
        return repr(error).encode()
    return head.split(b"\r\n")[0]
