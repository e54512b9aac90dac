"""go-playground/validator's meanings, as the daemon's `GlobalEntitiesValidator` applies them.

`required` means non-zero: a non-empty string, a non-nil slice or map (`[]` and `{}` pass),
a non-nil pointer (a pointer to a zero value passes), any non-nil interface value. On a
non-pointer struct it is skipped (the validator is built without WithRequiredStructEnabled)
and the struct's own fields are checked instead. A slice's elements are checked only after
`dive`. The text of each failure is the validator's own, namespaces and all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.contract.gotypes import (
    DECIMAL,
    Embedded,
    GoStruct,
    GoType,
    Interface,
    Pointer,
    Slice,
    Struct,
    flat_fields,
    hook,
    layout,
    struct_name,
)
from emulator.contract.model import (
    CONFIGURATE_METHODS,
    MODEL_PARAMETER_TYPES,
    MODEL_TYPES,
    MULTIMODAL_CONTENT_TYPES,
    PROMPT_MESSAGE_CONTENT_TYPES,
    PROMPT_MESSAGE_ROLES,
    PromptMessageContent,
)


def validate(cls: type[GoStruct], value: dict[str, Any], namespace: str) -> list[str]:
    """The validator's error lines for a decoded struct, in its order; empty when valid."""
    errors: list[str] = []
    _struct(cls, value, namespace, errors)
    return errors


def unchecked_elements(cls: type[GoStruct], value: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Elements of struct slices the validator never checks (no `dive`) that would fail.

    On llm/invoke the daemon forwards prompt messages with a bogus role or content type,
    which llm/num_tokens would refuse. Each entry: the field's JSON path and the failures.
    """
    found = []
    for field in flat_fields(cls):
        items = value[field.json_name]
        if not isinstance(field.gotype, Slice) or "dive" in field.tags or not items:
            continue
        element = field.gotype.elem
        if isinstance(element, Struct):
            for index, item in enumerate(items):
                if errors := validate(element.cls, item, struct_name(element.cls)):
                    found.append((f"{field.json_name}[{index}]", errors))
    return found


def error_line(key: str, field: str, tag: str) -> str:
    return f"Key: '{key}' Error:Field validation for '{field}' failed on the '{tag}' tag"


def _struct(cls: type[GoStruct], value: dict[str, Any], namespace: str, errors: list[str]) -> None:
    for member in layout(cls):
        if isinstance(member, Embedded):
            _struct(member.struct, value, f"{namespace}.{struct_name(member.struct)}", errors)
        else:
            key = f"{namespace}.{member.go_name}"
            _field(member.gotype, value[member.json_name], member.tags, key, member.go_name, errors)
    struct_rule: Callable[[dict[str, Any]], list[tuple[str, str, str]]] | None = hook(
        cls, "go_struct_errors"
    )
    if struct_rule is not None:
        for name, field, tag in struct_rule(value):
            errors.append(error_line(f"{namespace}.{name}", field, tag))


def _field(
    gotype: GoType, value: Any, tags: list[str], key: str, name: str, errors: list[str]
) -> None:
    behind_pointer = isinstance(gotype, Pointer | Interface)
    if isinstance(gotype, Pointer):
        gotype = gotype.elem
    if behind_pointer and value is None:
        # A nil pointer or interface fails its first tag, whatever it is, unless it may be empty.
        if tags and tags[0] != "omitempty":
            errors.append(error_line(key, name, tags[0].partition("=")[0]))
        return
    if gotype == DECIMAL:
        return  # a struct in Go (shopspring/decimal): `required` is skipped, no field has tags
    if isinstance(gotype, Struct):
        for tag in tags:
            if tag not in ("required", "omitempty") and not CUSTOM_TAGS[tag](value):
                errors.append(error_line(key, name, tag))
                return
        _struct(gotype.cls, value, key, errors)
        return
    for position, tag in enumerate(tags):
        if tag == "omitempty":
            if not _has_value(value, behind_pointer):
                return
            continue
        if tag == "dive":
            _dive(gotype, value, tags[position + 1 :], key, name, errors)
            return
        tag_name, _, parameter = tag.partition("=")
        if not _passes(tag_name, parameter, value, behind_pointer):
            errors.append(error_line(key, name, tag_name))
            return


def _dive(
    gotype: GoType, value: Any, tags: list[str], key: str, name: str, errors: list[str]
) -> None:
    if not isinstance(gotype, Slice) or value is None:
        return
    for index, item in enumerate(value):
        _field(gotype.elem, item, tags, f"{key}[{index}]", f"{name}[{index}]", errors)


def _has_value(value: Any, behind_pointer: bool) -> bool:
    if behind_pointer:
        return value is not None
    if isinstance(value, list | dict):
        return True
    return value is not None and value != "" and value != 0 and value is not False


def _passes(tag: str, parameter: str, value: Any, behind_pointer: bool) -> bool:
    match tag:
        case "required":
            return _has_value(value, behind_pointer)
        case "eq":
            return str(value) == parameter
        case "oneof":
            return str(value) in parameter.split(" ")
        case "min" | "gte":
            return _size(value) >= float(parameter)
        case "max" | "lte":
            return _size(value) <= float(parameter)
        case "gt":
            return _size(value) > float(parameter)
        case "lt":
            return _size(value) < float(parameter)
    return CUSTOM_TAGS[tag](value)


def _size(value: Any) -> float:
    """What go-playground compares for min/max/lt/gt: a length, or the number itself."""
    if isinstance(value, str):
        return len(value)  # Go counts runes, as Python counts characters
    if isinstance(value, list | dict):
        return len(value)
    return float(value)


def _is_parameter_rule(rule: dict[str, Any]) -> bool:
    """Without use_template, a parameter rule needs its own label and type."""
    return rule["use_template"] is not None or (
        rule["label"] is not None and rule["type"] is not None
    )


def _is_prompt_message_content(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, list):
        return all(
            not validate(PromptMessageContent, part, "PromptMessageContent") for part in value
        )
    return False


CUSTOM_TAGS: dict[str, Callable[[Any], bool]] = {
    "model_type": lambda value: value in MODEL_TYPES,
    "prompt_message_role": lambda value: value in PROMPT_MESSAGE_ROLES,
    "prompt_message_content": _is_prompt_message_content,
    "prompt_message_content_type": lambda value: value in PROMPT_MESSAGE_CONTENT_TYPES,
    "multimodal_content_type": lambda value: value in MULTIMODAL_CONTENT_TYPES,
    "model_parameter_type": lambda value: value in MODEL_PARAMETER_TYPES,
    "model_provider_configurate_method": lambda value: value in CONFIGURATE_METHODS,
    "parameter_rule": _is_parameter_rule,
}
"""The daemon's custom tags (pkg/entities/model_entities, plugin_entities)."""
