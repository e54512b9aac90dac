"""The dynamic-select route: pkg/entities/requests/dynamic_select.go and
pkg/entities/dynamic_select_entities."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.families.plugin_entities import ParameterOption
from emulator.contract.gotypes import Go, GoStruct


class RequestDynamicParameterSelect(GoStruct):
    credentials: Annotated[dict[str, Any] | None, Go(validate="required")] = None
    credential_type: Annotated[str, Go(validate="omitempty", omitempty=True)] = ""
    provider: Annotated[str, Go(validate="required")] = ""
    provider_action: Annotated[str, Go(validate="required")] = ""
    parameter: Annotated[str, Go(validate="required")] = ""


class DynamicSelectResult(GoStruct):
    options: Annotated[list[ParameterOption] | None, Go(validate="omitempty,dive")] = None
