"""uvicorn serving the emulator's app on a free loopback port, in a thread of this process."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from emulator.config import KEEP_ALIVE_SECONDS

STARTUP_SECONDS = 10.0
STOP_SECONDS = 5.0


class LiveServer:
    """The app on a real socket; started once, it serves until `close`."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        listener = socket.socket()
        # Binding here, not in uvicorn, means no other process can take the port between the
        # choice and the start (the race a probed free port has, under pytest-xdist above all).
        listener.bind((host, 0))
        port = listener.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [listener]},
            name="daemon-emulator live",
            daemon=True,
        )
        self._thread.start()
        self._wait_started()
        self.url = f"http://{host}:{port}"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_SECONDS)

    def _wait_started(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("daemon-emulator: uvicorn did not start; see the log above")
            time.sleep(0.005)
