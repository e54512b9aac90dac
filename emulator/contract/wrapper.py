"""`InvokePluginRequest[T]`, the body of every dispatch, and how the daemon binds it.

Mirrors pkg/entities/plugin_entities/request.go and the controller's BindRequest: decode the
body with Go's meanings (errors discarded), let the path's tenant_id overwrite the body's, then
validate. Only validation can reject.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from pydantic import create_model

from emulator.contract.findings import ContractWarning, WarningKind
from emulator.contract.gojson import GoDecoder, parse_document
from emulator.contract.gotypes import Go, GoStruct
from emulator.contract.validation import unchecked_elements, validate

REQUESTS_PACKAGE = "github.com/langgenius/dify-plugin-daemon/pkg/entities/requests"
NULLABLE_IDS = ("conversation_id", "message_id", "app_id", "endpoint_id")


class InvokePluginUserIdentity(GoStruct):
    tenant_id: Annotated[str, Go("TenantId", validate="required", bound_from="path")] = ""
    user_id: Annotated[str, Go("UserId")] = ""


class BasePluginIdentifier(GoStruct):
    plugin_id: Annotated[str, Go("PluginID", bound_from="nowhere")] = ""


_WRAPPER_FIELDS: dict[str, Any] = {
    "unique_identifier": (Annotated[str, Go(bound_from="nowhere")], ""),
    "conversation_id": (Annotated[str | None, Go("ConversationID")], None),
    "message_id": (Annotated[str | None, Go("MessageID")], None),
    "app_id": (Annotated[str | None, Go("AppID")], None),
    "endpoint_id": (Annotated[str | None, Go("EndpointID")], None),
    "context": (dict[str, Any] | None, None),
}


@cache
def wrapper_for(data_model: type[GoStruct]) -> type[GoStruct]:
    """`InvokePluginRequest[T]` for one route's data type, named as Go names the instantiation."""
    data: Any = (Annotated[data_model, Go(validate="required")], data_model())
    model: type[GoStruct] = create_model(
        f"InvokePluginRequest[{data_model.__name__}]",
        __base__=(InvokePluginUserIdentity, BasePluginIdentifier),
        **_WRAPPER_FIELDS,
        data=data,
    )
    model.go_type_name = f"InvokePluginRequest[{REQUESTS_PACKAGE}.{data_model.__name__}]"
    return model


@dataclass
class BoundRequest:
    """What the daemon's binder makes of one body."""

    values: dict[str, Any]
    """The decoded wrapper, `data` included, in Go's shape (structs as dicts)."""
    warnings: list[ContractWarning] = field(default_factory=list)
    validation_errors: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.values["data"]
        return data


def bind(
    data_model: type[GoStruct], body: bytes, tenant_id: str, content_type: str | None
) -> BoundRequest:
    """Decodes and validates a dispatch body exactly as the daemon's BindRequest does."""
    wrapper = wrapper_for(data_model)
    warnings: list[ContractWarning] = []
    decoder = GoDecoder()
    if _binds_json(content_type):
        document = parse_document(body, warnings)
        values = decoder.decode_document(wrapper, document)
    else:
        values = decoder.decode_document(wrapper, None)
        if body:
            warnings.append(
                ContractWarning(
                    WarningKind.BODY_IGNORED,
                    "$",
                    "Content-Type application/json",
                    repr(content_type),
                    "the daemon binds a form and never reads the JSON body",
                )
            )
    warnings.extend(decoder.warnings)
    warnings.extend(_ignored_wrapper_fields(values, tenant_id))
    warnings.extend(_unchecked_warnings(data_model, values["data"]))
    values["tenant_id"] = tenant_id
    if not _is_uuid(tenant_id):
        warnings.append(
            ContractWarning(
                WarningKind.TENANT_NOT_UUID,
                "$.tenant_id",
                "a UUID in the path",
                repr(tenant_id),
                "the daemon's installation lookup (a Postgres uuid column) would fail with a 500",
            )
        )
    namespace = wrapper.go_type_name or wrapper.__name__
    return BoundRequest(values, warnings, validate(wrapper, values, namespace))


def _unchecked_warnings(data_model: type[GoStruct], data: dict[str, Any]) -> list[ContractWarning]:
    return [
        ContractWarning(
            WarningKind.UNVALIDATED_ELEMENT,
            f"$.data.{path}",
            "an element its own rules accept",
            "; ".join(error.split(" Error:")[1] for error in errors),
            "the daemon forwards it unchecked on this route (no dive)",
        )
        for path, errors in unchecked_elements(data_model, data)
    ]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _binds_json(content_type: str | None) -> bool:
    """gin binds JSON for a POST whose Content-Type, cut at its first space or `;`, is JSON."""
    if content_type is None:
        return False
    return re.split("[ ;]", content_type, maxsplit=1)[0] == "application/json"


def _ignored_wrapper_fields(values: dict[str, Any], tenant_id: str) -> list[ContractWarning]:
    found = []
    if values["tenant_id"] not in ("", tenant_id):
        found.append(
            ContractWarning(
                WarningKind.TENANT_OVERRIDDEN,
                "$.tenant_id",
                f"the path's tenant {tenant_id!r} or none",
                repr(values["tenant_id"]),
                "the path's tenant replaces it",
            )
        )
    for name, source in (
        ("plugin_id", "the X-Plugin-ID header"),
        ("unique_identifier", "the installation"),
    ):
        if values[name]:
            found.append(
                ContractWarning(
                    WarningKind.IGNORED_FIELD,
                    f"$.{name}",
                    "nothing",
                    repr(values[name]),
                    f"the daemon ignores it; {source} decides",
                )
            )
    return found
