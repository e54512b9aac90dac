"""Plain JSON answers as the daemon's gin writes them (`ctx.JSON`): the content type with its
charset, the body as given, and any extra headers."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response

from emulator.contract import envelopes
from emulator.contract.envelopes import ErrorType

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def json_answer(status: int, body: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    response = Response(content=body.encode(), status_code=status)
    response.headers["content-type"] = JSON_CONTENT_TYPE
    response.raw_headers.extend((name.encode(), value.encode()) for name, value in headers)
    return response


def error_answer(
    status: int,
    error_type: ErrorType,
    message: str,
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    return json_answer(status, envelopes.error(error_type, message), headers)
