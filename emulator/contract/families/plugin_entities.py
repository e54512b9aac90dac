"""The parts of pkg/entities/plugin_entities that tool and dynamic-select answers carry."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.gotypes import Go, GoStruct
from emulator.contract.responses import I18nObject

TOOL_PARAMETER_TYPES = (
    "string",
    "number",
    "boolean",
    "select",
    "secret-input",
    "file",
    "files",
    "app-selector",
    "model-selector",
    "any",
    "dynamic-select",
    "array",
    "object",
    "checkbox",
    "date",
    "date-range",
)
TOOL_PARAMETER_FORMS = ("schema", "form", "llm")
PARAMETER_AUTO_GENERATE_TYPES = ("prompt_instruction",)


class ParameterOption(GoStruct):
    value: Annotated[str, Go(validate="required")] = ""
    label: Annotated[I18nObject, Go(validate="required")] = I18nObject()
    icon: Annotated[str, Go(validate="omitempty")] = ""


class ParameterAutoGenerate(GoStruct):
    type: Annotated[str, Go(validate="required,parameter_auto_generate_type")] = ""


class ParameterTemplate(GoStruct):
    enabled: bool = False


class ToolParameter(GoStruct):
    name: Annotated[str, Go(validate="required,gt=0,lt=1024")] = ""
    label: Annotated[I18nObject, Go(validate="required")] = I18nObject()
    human_description: Annotated[I18nObject, Go(validate="required")] = I18nObject()
    type: Annotated[str, Go(validate="required,tool_parameter_type")] = ""
    scope: Annotated[str | None, Go(validate="omitempty,max=1024,is_scope")] = None
    form: Annotated[str, Go(validate="required,tool_parameter_form")] = ""
    llm_description: Annotated[str, Go("LLMDescription", validate="omitempty")] = ""
    required: bool = False
    auto_generate: Annotated[ParameterAutoGenerate | None, Go(validate="omitempty")] = None
    template: Annotated[ParameterTemplate | None, Go(validate="omitempty")] = None
    default: Annotated[Any, Go(validate="omitempty")] = None
    min: Annotated[float | None, Go(validate="omitempty")] = None
    max: Annotated[float | None, Go(validate="omitempty")] = None
    multiple: Annotated[bool, Go(validate="omitempty")] = False
    precision: Annotated[int | None, Go(validate="omitempty")] = None
    options: Annotated[list[ParameterOption] | None, Go(validate="omitempty,dive")] = None
