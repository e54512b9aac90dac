"""Go's view of our pydantic contract models.

The daemon decodes and validates with Go's `encoding/json` and go-playground/validator, whose
meanings hang on Go kinds (a nil slice is not an empty one; `required` on a struct is skipped)
and on Go names (they appear in every 400 text). Each contract model is a `GoStruct`; its
fields carry that Go meaning in `Annotated[..., Go(...)]` metadata, and Go's struct embedding
is spelled as Python inheritance, so the models read like the Go source
they mirror (langgenius/dify-plugin-daemon, pkg/entities). `class T(A, B)` is `struct{A; B; ...}`:
Go's field order comes from `layout`, never from pydantic's own field order.

Kinds follow from annotations: `str`, `bool`, `int`, `float`, `Decimal`; `X | None` is a Go
pointer, except `dict[str, Any] | None` (a map) and `list[X] | None` (a slice), whose nil is
their own zero; `Any` is an interface; `RawJSON` is `json.RawMessage`.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, cached_property
from typing import Annotated, Any, ClassVar, NewType, get_args, get_origin

from pydantic import BaseModel, ConfigDict

RawJSON = NewType("RawJSON", str)
"""Go's json.RawMessage: the member's JSON text, kept as it came."""


@dataclass(frozen=True)
class Go:
    """Go metadata for one struct field.

    name: the Go field name, when it is not the CamelCase of the JSON key (it shows in 400s).
    validate: the go-playground `validate` tag, verbatim.
    omitempty: the JSON tag has `omitempty` (left out of encodings when empty).
    """

    name: str | None = None
    validate: str = ""
    omitempty: bool = False
    bound_from: str = "body"
    """Where the daemon takes the value from: "body", "path" (the body's is overwritten) or
    "nowhere" (the body's is ignored)."""


class GoStruct(BaseModel):
    """A contract model that is also a Go struct (see the module docstring)."""

    model_config = ConfigDict(protected_namespaces=(), extra="allow")

    go_type_name: ClassVar[str | None] = None
    """The Go type name, when it differs from the class name."""


# Go kinds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    kind: str  # "string" | "bool" | "int" | "float64" | "decimal"


@dataclass(frozen=True)
class Pointer:
    elem: GoType


@dataclass(frozen=True)
class Slice:
    elem: GoType


@dataclass(frozen=True)
class Map:
    """map[string]any: the only map kind the daemon's request and response types use."""


@dataclass(frozen=True)
class Interface:
    """any."""


@dataclass(frozen=True)
class Raw:
    """json.RawMessage."""


@dataclass(frozen=True)
class Struct:
    cls: type[GoStruct]


GoType = Scalar | Pointer | Slice | Map | Interface | Raw | Struct

STRING, BOOL, INT, FLOAT64, DECIMAL = (
    Scalar("string"),
    Scalar("bool"),
    Scalar("int"),
    Scalar("float64"),
    Scalar("decimal"),
)
_SCALARS: dict[object, Scalar] = {
    str: STRING,
    bool: BOOL,
    int: INT,
    float: FLOAT64,
    Decimal: DECIMAL,
}


def go_type_of(annotation: Any) -> GoType:
    """The Go kind an annotation stands for (see the module docstring)."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if annotation is Any:
        return Interface()
    if annotation is RawJSON:
        return Raw()
    if isinstance(annotation, type) and issubclass(annotation, GoStruct):
        return Struct(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        return go_type_of(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unsupported union {annotation!r}")
        inner = go_type_of(members[0])
        return inner if isinstance(inner, Slice | Map | Interface | Raw) else Pointer(inner)
    if origin is list:
        return Slice(go_type_of(get_args(annotation)[0]))
    if origin is dict:
        return Map()
    raise TypeError(f"no Go kind for {annotation!r}")


def go_type_name(gotype: GoType) -> str:
    """How Go spells the type in its error texts."""
    match gotype:
        case Scalar(kind="decimal"):
            return "decimal.Decimal"
        case Scalar(kind=kind):
            return kind
        case Pointer(elem=elem):
            return "*" + go_type_name(elem)
        case Slice(elem=elem):
            return "[]" + go_type_name(elem)
        case Map():
            return "map[string]interface {}"
        case Interface():
            return "interface {}"
        case Raw():
            return "json.RawMessage"
        case Struct(cls=cls):
            return struct_name(cls)
    raise AssertionError(gotype)


# Struct layout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    json_name: str
    go_name: str
    gotype: GoType
    validate: str
    omitempty: bool
    bound_from: str = "body"

    @cached_property
    def tags(self) -> list[str]:
        return [tag for tag in self.validate.split(",") if tag]


@dataclass(frozen=True)
class Embedded:
    struct: type[GoStruct]


Member = Field | Embedded


@cache
def hook(cls: type[GoStruct], name: str) -> Any:
    """A struct's custom behaviour (go_unmarshal, go_marshal, ...), or None; looked up once."""
    return getattr(cls, name, None)


def struct_name(cls: type[GoStruct]) -> str:
    return cls.go_type_name or cls.__name__


def embedded_structs(cls: type[GoStruct]) -> list[type[GoStruct]]:
    """The structs `cls` embeds: its GoStruct bases, in the order they are written."""
    return [base for base in cls.__bases__ if issubclass(base, GoStruct) and base is not GoStruct]


@cache
def layout(cls: type[GoStruct]) -> tuple[Member, ...]:
    """The struct's members in Go declaration order: embedded structs first, then own fields."""
    members: list[Member] = [Embedded(base) for base in embedded_structs(cls)]
    own = inspect.get_annotations(cls)
    for json_name, info in cls.model_fields.items():
        if json_name not in own:
            continue
        go = next((m for m in info.metadata if isinstance(m, Go)), Go())
        members.append(
            Field(
                json_name=info.alias or json_name,
                go_name=go.name or _camel(json_name),
                gotype=go_type_of(info.annotation),
                validate=go.validate,
                omitempty=go.omitempty,
                bound_from=go.bound_from,
            )
        )
    return tuple(members)


@cache
def flat_fields(cls: type[GoStruct]) -> tuple[Field, ...]:
    """Every field, embedded ones promoted, in the order Go encodes them."""
    fields: list[Field] = []
    for member in layout(cls):
        if isinstance(member, Embedded):
            fields.extend(flat_fields(member.struct))
        else:
            fields.append(member)
    return tuple(fields)


def _camel(json_name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in json_name.split("_"))


def zero_value(gotype: GoType) -> Any:
    """Go's zero value, in the Python shape the decoder builds (structs as dicts)."""
    match gotype:
        case Scalar(kind="string"):
            return ""
        case Scalar(kind="bool"):
            return False
        case Scalar(kind="int"):
            return 0
        case Scalar(kind="float64"):
            return 0.0
        case Scalar(kind="decimal"):
            return Decimal(0)
        case Struct(cls=cls):
            return StructValue(cls, {f.json_name: zero_value(f.gotype) for f in flat_fields(cls)})
    return None


class StructValue(dict[str, Any]):
    """A decoded Go struct: its fields by JSON name, and which struct it is (for encoding)."""

    __slots__ = ("cls",)

    def __init__(self, cls: type[GoStruct], fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.cls = cls
