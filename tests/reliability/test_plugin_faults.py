"""Plugin faults: each way a plugin can fail a stream ends it as the daemon ends it, over
loopback, and leaves the server healthy: no plugin thread left, nothing in flight, the next
dispatch served.

The faulty fixture plugin raises before, while making and after the first chunk, hangs
without yielding, writes a chunk the daemon cannot decode, and prints to stdout. The server
times streams out after half a second (PLUGIN_MAX_EXECUTION_TIMEOUT).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dify_client import DaemonError, collect, envelopes
from helpers import dispatch_headers, dispatch_url, payload
from support import IMPATIENT_TIMEOUT, InProcessEmulator, Tally, wait_for

FAULTY = "tests/faulty"
HANG_SECONDS = 2.5


def faulty_body(model: str, **credentials: Any) -> dict[str, Any]:
    body = payload("llm/invoke", with_app_id=True)
    body["data"].update(provider="faulty", model=model, credentials={"k": "v", **credentials})
    return body


def invoke(
    emulator: InProcessEmulator, body: dict[str, Any], plugin_id: str = FAULTY
) -> httpx.Response:
    content, headers = json.dumps(body), dispatch_headers(plugin_id)
    with emulator.client(timeout=30) as client:
        return client.post(dispatch_url("llm/invoke"), content=content, headers=headers)


def texts(response: httpx.Response) -> tuple[list[str], DaemonError | None]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    chunks, error = collect(response.text)
    return [chunk["delta"]["message"]["content"] for chunk in chunks], error


def plugin_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("plugin ")]


@pytest.fixture
def healthy_after(impatient: InProcessEmulator, tally: Tally) -> Iterator[None]:
    """After the test: no plugin thread, nothing in flight, and the example plugin serves."""
    impatient.journal.clear()
    yield
    tally.add(faults=1)
    wait_for(lambda: not plugin_threads(), HANG_SECONDS + 5, plugin_threads)
    assert impatient.journal.settle(5)
    assert impatient.plugins.active_requests == 0
    with impatient.client(timeout=10) as client:
        health = client.get("/health/check")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    echoed, error = texts(invoke(impatient, payload("llm/invoke", True), "emulator/echo"))
    assert error is None and json.loads(echoed[0])["app_id"] == "app-9f3c"
    tally.add(requests=2)


@pytest.mark.usefixtures("healthy_after")
@pytest.mark.parametrize(
    ("model", "sent", "error_type", "message"),
    [
        ("raise-before", [], "InvokeServerUnavailableError", "refused before the first chunk"),
        ("raise-first", [], "InvokeServerUnavailableError", "raised while making the first chunk"),
        ("raise-after", ["first"], "InvokeServerUnavailableError", "raised after the first chunk"),
    ],
)
def test_an_exception_ends_the_stream_with_the_plugins_error(
    impatient: InProcessEmulator,
    tally: Tally,
    model: str,
    sent: list[str],
    error_type: str,
    message: str,
) -> None:
    received, error = texts(invoke(impatient, faulty_body(model)))
    tally.add(requests=1)

    assert received == sent
    assert error is not None and error.error_type == error_type
    assert message in error.message


@pytest.mark.usefixtures("healthy_after")
def test_an_exception_mid_stream_ends_it_after_the_chunks_already_sent(
    impatient: InProcessEmulator, tally: Tally
) -> None:
    body = faulty_body("boom")
    body["data"]["provider"] = "raising"

    received, error = texts(invoke(impatient, body, "tests/raising"))
    tally.add(requests=1)

    assert received == ["one", "two"]
    assert error == DaemonError("InvokeBadRequestError", "boom after two chunks")


@pytest.mark.usefixtures("healthy_after")
@pytest.mark.parametrize("chunks_before", [0, 2])
def test_a_hanging_plugin_gets_the_daemons_timeout_item_and_is_closed_later(
    impatient: InProcessEmulator, tally: Tally, tmp_path: Path, chunks_before: int
) -> None:
    marker = tmp_path / "closed"
    body = faulty_body(
        "hang", hang_seconds=HANG_SECONDS, chunks_before=chunks_before, closed_marker=str(marker)
    )

    started = time.monotonic()
    received, error = texts(invoke(impatient, body))
    elapsed = time.monotonic() - started
    tally.add(requests=1)

    assert received == [f"chunk {index}" for index in range(chunks_before)]
    assert error == DaemonError("PluginDaemonInternalServerError", "killed by timeout")
    assert IMPATIENT_TIMEOUT <= elapsed < HANG_SECONDS
    assert not marker.exists()  # the plugin is still asleep: only the answer has ended
    wait_for(marker.exists, HANG_SECONDS + 5)  # it woke, its chunk was refused, it was closed


@pytest.mark.usefixtures("healthy_after")
def test_a_chunk_the_daemon_cannot_decode_ends_the_stream_with_unmarshal_error(
    impatient: InProcessEmulator, tally: Tally
) -> None:
    response = invoke(impatient, faulty_body("invalid-chunk"))
    tally.add(requests=1)

    assert texts(response)[0] == ["valid"]
    last = envelopes(response.text)[-1]
    assert (last["code"], last["data"]) == (-500, None)
    outer = json.loads(last["message"])
    assert (outer["error_type"], outer["args"]) == ("PluginInvokeError", None)
    inner = json.loads(outer["message"])
    assert list(inner) == ["error_type", "message"]
    assert inner["error_type"] == "unmarshal_error"
    assert inner["message"].startswith("unmarshal json failed: ")
    assert "index" in inner["message"], inner["message"]


@pytest.mark.usefixtures("healthy_after")
def test_what_a_plugin_prints_to_stdout_stays_out_of_the_stream(
    impatient: InProcessEmulator, tally: Tally, capfd: pytest.CaptureFixture[str]
) -> None:
    response = invoke(impatient, faulty_body("prints"))
    tally.add(requests=1)

    assert texts(response) == (["one", "two"], None)
    assert "stdout" not in response.text
    printed = capfd.readouterr().out
    assert "prints: a line on stdout before the first chunk" in printed
    assert "prints: after the last chunk" in printed
