"""The floor: a bare FastAPI route that streams fixed chunks, under the same uvicorn.

    python -m bench.bare PORT

`POST /stream/{n}` reads the body and streams n fixed items of an echo chunk's size, framed
as the daemon frames them; `GET /health/check` answers a fixed body.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from emulator.config import KEEP_ALIVE_SECONDS

ITEM = (
    b'data: {"code":0,"message":"success","data":{"model":"echo-1","system_fingerprint":"",'
    b'"delta":{"index":0,"message":{"role":"assistant","content":" word","name":"",'
    b'"tool_calls":[],"tool_call_id":"","opaque_body":null},"usage":null,'
    b'"finish_reason":null},"prompt_messages":[]}}\n\n'
)


def create_bare_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/stream/{items}")
    async def stream(items: int, request: Request) -> StreamingResponse:
        await request.body()
        return StreamingResponse(_items(items), media_type="text/event-stream")

    @app.get("/health/check")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


async def _items(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield ITEM


def serve(port: int) -> None:
    """Serve the bare app with the options `python -m emulator serve` gives uvicorn."""
    uvicorn.run(
        create_bare_app(),
        host="127.0.0.1",
        port=port,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]))
