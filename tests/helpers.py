"""Paths, payloads and headers the tests share."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PLUGINS = ROOT / "fixtures" / "plugins"
PAYLOADS = ROOT / "fixtures" / "payloads"
KEY = "test-key"
ECHO = "emulator/echo"


def payload(route: str, with_app_id: bool = False) -> dict[str, Any]:
    """A Dify-shaped body from fixtures/payloads; `with_app_id` only where Dify sends one
    (the model and tool routes, agent strategies), the plain body elsewhere."""
    stem = route.replace("/", "__")
    with_app_id_file = PAYLOADS / f"{stem}.with_app_id.json"
    path = (
        with_app_id_file
        if with_app_id and with_app_id_file.is_file()
        else PAYLOADS / f"{stem}.json"
    )
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def dispatch_headers(plugin_id: str = ECHO, key: str = KEY) -> dict[str, str]:
    """The headers Dify sends with every dispatch."""
    return {"X-Api-Key": key, "X-Plugin-ID": plugin_id, "Content-Type": "application/json"}


TENANT = "5f0c8a9e-3b1d-4c7a-9e2f-6d4b1a8c7e30"


def dispatch_url(route: str, tenant_id: str = TENANT) -> str:
    return f"/plugin/{tenant_id}/dispatch/{route}"


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


REQUESTS = "github.com/langgenius/dify-plugin-daemon/pkg/entities/requests"
"""The Go package of the dispatch `data` types, as it shows in the validator's keys."""


def assert_missing_member_400(response: Any, key: str) -> None:
    """The daemon's 400 for a required member left out: `key` is the validator's key after
    the wrapper's type, e.g. `RequestInvokeLLM].Data.Model`."""
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    envelope = response.json()
    assert (envelope["code"], envelope["data"]) == (-400, None)
    error = json.loads(envelope["message"])
    assert error["error_type"] == "PluginDaemonBadRequestError" and error["args"] is None
    go_field = key.rsplit(".", 1)[1]
    assert error["message"] == (
        f"Key: 'InvokePluginRequest[{REQUESTS}.{key}' "
        f"Error:Field validation for '{go_field}' failed on the 'required' tag"
    )
