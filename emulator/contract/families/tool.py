"""Tool routes: pkg/entities/requests/tool.go and pkg/entities/tool_entities."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.families.plugin_entities import (
    PARAMETER_AUTO_GENERATE_TYPES,
    TOOL_PARAMETER_FORMS,
    TOOL_PARAMETER_TYPES,
    ToolParameter,
)
from emulator.contract.gotypes import Go, GoStruct
from emulator.contract.model import Credentials
from emulator.contract.validation import CUSTOM_TAGS

RESPONSE_CHUNK_TYPES = (
    "text",
    "file",
    "blob",
    "blob_chunk",
    "json",
    "link",
    "image",
    "image_link",
    "binary_link",
    "variable",
    "log",
    "retriever_resources",
)

# The daemon registers these tags in the init() of the packages that declare them.
CUSTOM_TAGS["is_valid_tool_response_chunk_type"] = lambda value: value in RESPONSE_CHUNK_TYPES
CUSTOM_TAGS["tool_parameter_type"] = lambda value: value in TOOL_PARAMETER_TYPES
CUSTOM_TAGS["tool_parameter_form"] = lambda value: value in TOOL_PARAMETER_FORMS
CUSTOM_TAGS["parameter_auto_generate_type"] = lambda value: value in PARAMETER_AUTO_GENERATE_TYPES


# requests ---------------------------------------------------------------------------------


class InvokeToolSchema(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    tool: Annotated[str, Go(validate="required")] = ""
    tool_parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class RequestInvokeTool(InvokeToolSchema, Credentials):
    pass


class RequestValidateToolCredentials(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    credentials: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class RequestGetToolRuntimeParameters(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    tool: Annotated[str, Go(validate="required")] = ""
    credentials: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


# tool_entities ----------------------------------------------------------------------------


class ToolResponseChunk(GoStruct):
    type: Annotated[str, Go(validate="required,is_valid_tool_response_chunk_type")] = ""
    message: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


class ValidateCredentialsResult(GoStruct):
    result: bool = False


class GetToolRuntimeParametersResponse(GoStruct):
    parameters: list[ToolParameter] | None = None
