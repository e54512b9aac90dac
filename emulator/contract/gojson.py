"""Go's `encoding/json`, as the daemon uses it, over our GoStruct models.

Decoding follows Go, not Python: keys match case-insensitively, repeated keys merge into the
value already decoded, a type mismatch or a null leaves the field as it was, numbers bound for
`any` become float64, and a custom unmarshaler's error aborts the rest of the document. The
daemon swallows every decode error (only the validator can reject), so each such silent case
is recorded as a `ContractWarning`. In strict mode (how the daemon reads plugin replies with
`json.Unmarshal`) the first Go error is kept as well.

Encoding follows `json.Marshal`: struct fields in declaration order, map keys sorted, floats
in Go's shortest form, `<`, `>` and `&` escaped.
"""

from __future__ import annotations

import codecs
import json
import json.encoder
import json.scanner
import re
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Protocol

from emulator.contract.findings import ContractWarning, WarningKind
from emulator.contract.gotypes import (
    Field,
    GoStruct,
    GoType,
    Interface,
    Map,
    Pointer,
    Raw,
    Scalar,
    Slice,
    Struct,
    StructValue,
    flat_fields,
    go_type_name,
    hook,
    struct_name,
    zero_value,
)

GO_MAX_DEPTH = 10_000
_INT64 = range(-(2**63), 2**63)
_INTEGER_LITERAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_JSON_WHITESPACE = " \t\n\r"
_GO_REPLACE = "emulator-go-replace"


def _replace_each_byte(error: UnicodeError) -> tuple[str, int]:
    """Go's decoder replaces every invalid byte on its own; Python's 'replace' groups them."""
    assert isinstance(error, UnicodeDecodeError)
    return "\ufffd" * (error.end - error.start), error.end


codecs.register_error(_GO_REPLACE, _replace_each_byte)


class Obj:
    """A JSON object as its key/value pairs, in order, repeats kept (Go sees every one)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.pairs)

    def __repr__(self) -> str:
        return f"Obj({self.pairs!r})"


class Num:
    """A JSON number as its literal: Go converts it by the kind of the field it lands in."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __str__(self) -> str:
        return self.literal

    def __repr__(self) -> str:
        return f"Num({self.literal})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Num) and other.literal == self.literal

    def __hash__(self) -> int:
        return hash(self.literal)


class RawMessage:
    """A json.RawMessage: a member kept as it came. Its text is made only when asked for."""

    __slots__ = ("_text", "parsed")

    def __init__(self, parsed: Any) -> None:
        self.parsed = parsed
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = compact(self.parsed)
        return self._text

    def __repr__(self) -> str:
        return f"RawMessage({self.text})"


class GoMap(dict[str, Any]):
    """A decoded Go map: encoded with sorted keys, unlike a struct."""


class DecodeAborted(Exception):
    """A custom UnmarshalJSON failed: Go stops decoding the document there."""


NOTHING: Any = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[:1]!r} looking for beginning of value")


_PARSER = json.JSONDecoder(
    object_pairs_hook=Obj, parse_float=Num, parse_int=Num, parse_constant=_reject_constant
)
_DEEP_PARSER = json.JSONDecoder(
    object_pairs_hook=Obj, parse_float=Num, parse_int=Num, parse_constant=_reject_constant
)
# The C scanner stops near 1500 levels whatever the recursion limit; Python's own does not.
_DEEP_PARSER.scan_once = json.scanner.py_make_scanner(_DEEP_PARSER)  # type: ignore[attr-defined]
_DEEP_PARSE_LOCK = threading.Lock()


# Parsing ----------------------------------------------------------------------------------


def parse_document(body: bytes, warnings: list[ContractWarning]) -> Any:
    """The first JSON value of `body` as Go's Decoder reads it, or NOTHING on a syntax error."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors=_GO_REPLACE)
        warnings.append(
            _warning(WarningKind.INVALID_UTF8, "$", "UTF-8", "invalid bytes", "each becomes U+FFFD")
        )
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    try:
        value, end = _raw_decode(text, start)
    except (ValueError, RecursionError) as error:
        actual = f"a syntax error ({error})" if str(error) else "a syntax error"
        warnings.append(
            _warning(
                WarningKind.MALFORMED_JSON, "$", "one JSON value", actual, "nothing is decoded"
            )
        )
        return NOTHING
    if text[end:].strip(_JSON_WHITESPACE):
        warnings.append(
            _warning(
                WarningKind.TRAILING_DATA,
                "$",
                "nothing after the JSON value",
                f"{len(text) - end} more bytes",
                "they are never read",
            )
        )
    return value


def _raw_decode(text: str, start: int) -> tuple[Any, int]:
    try:
        return _PARSER.raw_decode(text, start)
    except RecursionError:
        return _raw_decode_deep(text, start)


def _raw_decode_deep(text: str, start: int) -> tuple[Any, int]:
    """Go accepts nesting up to 10000 levels: past the C scanner, Python's own scanner goes on.

    Its recursion is Python-to-Python, which needs a higher recursion limit but no C stack.
    """
    if _nesting_depth(text, start) > GO_MAX_DEPTH:
        raise ValueError(f"exceeded max depth of {GO_MAX_DEPTH}")
    with _DEEP_PARSE_LOCK:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 3 * GO_MAX_DEPTH))
        try:
            return _DEEP_PARSER.raw_decode(text, start)
        finally:
            sys.setrecursionlimit(limit)


def _nesting_depth(text: str, start: int) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for char in text[start:]:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
            if depth == 0:
                break
    return deepest


# Decoding ---------------------------------------------------------------------------------


class CustomUnmarshaler(Protocol):
    @classmethod
    def go_unmarshal(cls, decoder: GoDecoder, value: Any, path: str) -> dict[str, Any]: ...


class GoDecoder:
    """Decodes parsed JSON into Go-shaped Python values (structs become dicts)."""

    def __init__(self) -> None:
        self.warnings: list[ContractWarning] = []
        self.error: str | None = None
        """The first error Go's decoder saves (json.Unmarshal returns it; gin discards it)."""
        self._structs: list[str] = []

    def decode_document(
        self, cls: type[GoStruct], document: Any, path: str = "$"
    ) -> dict[str, Any]:
        """json.Unmarshal into a new `cls`; `path` names where the document sits, for warnings."""
        holder = {"value": zero_value(Struct(cls))}
        if document is NOTHING:
            self.fail("invalid JSON")
        elif isinstance(document, Obj):
            try:
                self.decode_into(Struct(cls), document, holder, "value", path)
            except DecodeAborted as abort:
                self.fail(str(abort))
        elif document is None:
            self.warn(WarningKind.NULL_TO_ZERO, path, "an object", "null", "nothing is decoded")
        else:
            self._mismatch(Struct(cls), document, path, top_level=True)
        return holder["value"]

    def decode_into(self, gotype: GoType, value: Any, holder: Any, key: Any, path: str) -> None:
        """Decodes `value` into `holder[key]`, merging into what is there as Go does."""
        match gotype:
            case Scalar():
                holder[key] = self._scalar(gotype, value, holder[key], path)
            case Pointer(elem=elem):
                self._pointer(elem, value, holder, key, path)
            case Slice(elem=elem):
                self._slice(elem, value, holder, key, path)
            case Map():
                self._map(value, holder, key, path)
            case Interface():
                holder[key] = self._any(value, path)
            case Raw():
                holder[key] = RawMessage(value)
            case Struct(cls=cls):
                self._struct(cls, value, holder, key, path)

    def warn(self, kind: WarningKind, path: str, expected: str, actual: str, effect: str) -> None:
        self.warnings.append(_warning(kind, path, expected, actual, effect))

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    # kinds

    def _scalar(self, gotype: Scalar, value: Any, current: Any, path: str) -> Any:
        if value is None:
            # "" is how Go spells an absent string, so null into a string loses nothing: only
            # numbers and booleans gain a value (Dify's top_n: null reaches a plugin as 0).
            if gotype.kind != "string" or current != "":
                self._null_kept(gotype, current, path)
            return current
        match gotype.kind, value:
            case "string", str():
                return self._text(value, path)
            case "bool", bool():
                return value
            case "int", Num(literal=literal) if _is_int64(literal):
                return int(literal)
            case "float64", Num(literal=literal):
                number = float(literal)
                if number not in (float("inf"), float("-inf")):
                    return number
                self._overflow(literal, gotype, path)
                return current
            case "decimal", Num(literal=literal):
                return self._decimal(literal, current, path)
            case "decimal", str():
                return self._decimal(value, current, path)
        self._mismatch(gotype, value, path)
        return current

    def _pointer(self, elem: GoType, value: Any, holder: Any, key: Any, path: str) -> None:
        if value is None:
            holder[key] = None
            return
        if holder[key] is None:
            # Go allocates the pointer before it sees whether the value fits.
            holder[key] = zero_value(elem)
        if elem == Scalar("string") and not isinstance(value, str):
            self.fail(self._type_error(value, Pointer(elem), path))
            self.warn(
                WarningKind.ID_COERCED,
                path,
                "a string or null",
                f"{_json_kind(value)} {_excerpt(compact(value))}",
                f"the daemon forwards {json.dumps(holder[key])}",
            )
            return
        self.decode_into(elem, value, holder, key, path)

    def _slice(self, elem: GoType, value: Any, holder: Any, key: Any, path: str) -> None:
        if value is None:
            holder[key] = None
            return
        if not isinstance(value, list):
            self._mismatch(Slice(elem), value, path)
            return
        items = holder[key] if holder[key] is not None else []
        holder[key] = items
        for index, item in enumerate(value):
            if index >= len(items):
                items.append(zero_value(elem))
            self.decode_into(elem, item, items, index, f"{path}[{index}]")
        del items[len(value) :]

    def _map(self, value: Any, holder: Any, key: Any, path: str) -> None:
        if value is None:
            holder[key] = None
            return
        if not isinstance(value, Obj):
            self._mismatch(Map(), value, path)
            return
        mapping = holder[key] if holder[key] is not None else GoMap()
        holder[key] = mapping
        self._fill_map(mapping, value, path)

    def _fill_map(self, mapping: GoMap, value: Obj, path: str) -> None:
        for name, item in value:
            name = self._text(name, path)
            item_path = _member_path(path, name)
            if name in mapping:
                self.warn(
                    WarningKind.DUPLICATE_KEY,
                    item_path,
                    "each key once",
                    "it again",
                    "the last one wins",
                )
            mapping[name] = self._any(item, item_path)

    def _any(self, value: Any, path: str) -> Any:
        match value:
            case Obj():
                mapping = GoMap()
                self._fill_map(mapping, value, path)
                return mapping
            case list():
                return [self._any(item, f"{path}[{i}]") for i, item in enumerate(value)]
            case Num(literal=literal):
                return self._float_for_any(literal, path)
            case str():
                return self._text(value, path)
        return value

    def _struct(self, cls: type[GoStruct], value: Any, holder: Any, key: Any, path: str) -> None:
        unmarshal: Callable[..., dict[str, Any]] | None = hook(cls, "go_unmarshal")
        if unmarshal is not None:
            holder[key] = unmarshal(self, value, path)
        elif value is None:
            self._null_kept(Struct(cls), holder[key], path)
        elif isinstance(value, Obj):
            self._fill_struct(cls, value, holder[key], path)
            after_unmarshal: Callable[[dict[str, Any]], None] | None = hook(
                cls, "go_after_unmarshal"
            )
            if after_unmarshal is not None:
                after_unmarshal(holder[key])
        else:
            self._mismatch(Struct(cls), value, path)

    def _fill_struct(
        self, cls: type[GoStruct], value: Obj, target: dict[str, Any], path: str
    ) -> None:
        exact, folded = _field_index(cls)
        seen: set[str] = set()
        self._structs.append(struct_name(cls))
        try:
            for name, item in value:
                field = exact.get(name) or folded.get(_fold(name))
                if field is None:
                    self.warn(
                        WarningKind.UNKNOWN_KEY,
                        _member_path(path, name),
                        f"a field of {struct_name(cls)}",
                        f"unknown key {name!r}",
                        "the daemon drops it",
                    )
                    continue
                field_path = _member_path(path, field.json_name)
                if name != field.json_name:
                    self.warn(
                        WarningKind.KEY_CASE,
                        field_path,
                        f"key {field.json_name!r}",
                        f"{name!r}",
                        "Go matches it case-insensitively",
                    )
                if field.json_name in seen:
                    self.warn(
                        WarningKind.DUPLICATE_KEY,
                        field_path,
                        "each key once",
                        "it again",
                        "Go decodes it into the earlier value instead of replacing it",
                    )
                seen.add(field.json_name)
                self.decode_into(field.gotype, item, target, field.json_name, field_path)
        finally:
            self._structs.pop()

    # helpers

    def _text(self, value: str, path: str) -> str:
        if _LONE_SURROGATE.search(value) is None:
            return value
        self.warn(
            WarningKind.INVALID_UTF8, path, "UTF-16 pairs", "a lone surrogate", "it becomes U+FFFD"
        )
        return _LONE_SURROGATE.sub("\ufffd", value)

    def _decimal(self, value: str, current: Any, path: str) -> Any:
        try:
            return Decimal(value)
        except InvalidOperation:
            self.fail(f"can't convert {value} to decimal")
            self.warn(
                WarningKind.TYPE_MISMATCH, path, "a decimal", repr(value), "the daemon skips it"
            )
            return current

    def _float_for_any(self, literal: str, path: str) -> float | None:
        number = float(literal)
        if number in (float("inf"), float("-inf")):
            self._overflow(literal, Scalar("float64"), path)
            return None
        if _INTEGER_LITERAL.fullmatch(literal) and int(literal) != int(number):
            self.warn(
                WarningKind.PRECISION_LOST,
                path,
                "an integer within 2^53",
                literal,
                f"it becomes float64 {encode_any(number)} in the daemon",
            )
        return number

    def _overflow(self, literal: str, gotype: GoType, path: str) -> None:
        self.fail(self._type_error(f"number {literal}", gotype, path, literal=True))
        self.warn(
            WarningKind.NUMBER_OVERFLOW, path, "a float64", literal, "the daemon drops the value"
        )

    def _null_kept(self, gotype: GoType, current: Any, path: str) -> None:
        zero = zero_value(gotype)
        if current == zero:
            effect = f"Go leaves it at its zero value {encode_any(zero)}"
        else:
            effect = "Go ignores it: the earlier value stays"
        self.warn(WarningKind.NULL_TO_ZERO, path, go_type_name(gotype), "null", effect)

    def _mismatch(self, gotype: GoType, value: Any, path: str, top_level: bool = False) -> None:
        self.fail(self._type_error(value, gotype, path, top_level=top_level))
        self.warn(
            WarningKind.TYPE_MISMATCH,
            path,
            go_type_name(gotype),
            _json_kind(value),
            "the daemon skips it",
        )

    def _type_error(
        self,
        value: Any,
        gotype: GoType,
        path: str,
        top_level: bool = False,
        literal: bool = False,
    ) -> str:
        kind = str(value) if literal else _json_kind(value)
        if top_level or not self._structs:
            return f"json: cannot unmarshal {kind} into Go value of type {go_type_name(gotype)}"
        field = ".".join(re.findall(r"\.([^.\[]+)", path))
        return (
            f"json: cannot unmarshal {kind} into Go struct field "
            f"{self._structs[-1]}.{field} of type {go_type_name(gotype)}"
        )


def _is_int64(literal: str) -> bool:
    return _INTEGER_LITERAL.fullmatch(literal) is not None and int(literal) in _INT64


@cache
def _field_index(cls: type[GoStruct]) -> tuple[dict[str, Field], dict[str, Field]]:
    fields = flat_fields(cls)
    return {f.json_name: f for f in fields}, {_fold(f.json_name): f for f in fields}


def _fold(name: str) -> str:
    """Go's key folding: each rune to upper(lower(rune)), one rune for one."""
    if name.isascii():
        return name.upper()
    folded = []
    for char in name:
        lower = char.lower() if len(char.lower()) == 1 else char
        upper = lower.upper()
        folded.append(upper if len(upper) == 1 else lower)
    return "".join(folded)


def _member_path(path: str, name: str) -> str:
    return (
        f"{path}.{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"{path}[{name!r}]"
    )


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_kind(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "bool"
        case Num():
            return "number"
        case str():
            return "string"
        case Obj():
            return "object"
        case list():
            return "array"
    return type(value).__name__


def _warning(
    kind: WarningKind, path: str, expected: str, actual: str, effect: str
) -> ContractWarning:
    return ContractWarning(kind, path, expected, actual, effect)


# Encoding ---------------------------------------------------------------------------------

_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_HTML_UNSAFE = re.compile("[<>&\u2028\u2029]")


_NEEDS_ESCAPING = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')


def encode_string(text: str) -> str:
    if _NEEDS_ESCAPING.search(text) is None:
        return f'"{text}"'
    encoded: str = json.encoder.encode_basestring(text)
    return _HTML_UNSAFE.sub(lambda m: _HTML_ESCAPES[m.group()], encoded)


def encode_float(number: float) -> str:
    """strconv's shortest form, as encoding/json picks it ('e' only below 1e-6 or from 1e21)."""
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(number)
        return re.sub(r"e([+-])0(\d)$", r"e\1\2", text)
    return format(Decimal(repr(number)).normalize(), "f")


def encode_decimal(number: Decimal) -> str:
    """shopspring/decimal marshals as a quoted string with trailing zeros trimmed."""
    return '"' + format(number.normalize(), "f") + '"'


def encode(value: Any, gotype: GoType) -> str:
    """json.Marshal of a decoded value of `gotype`."""
    match gotype:
        case Scalar(kind="string"):
            return encode_string(value)
        case Scalar(kind="decimal"):
            return encode_decimal(value)
        case Scalar():
            return encode_any(value)
        case Pointer(elem=elem):
            return "null" if value is None else encode(value, elem)
        case Slice(elem=elem):
            if value is None:
                return "null"
            return "[" + ",".join(encode(item, elem) for item in value) + "]"
        case Raw():
            return "null" if value is None else value.text
        case Struct(cls=cls):
            return encode_struct(cls, value)
    return encode_any(value)


def encode_struct(cls: type[GoStruct], value: dict[str, Any]) -> str:
    marshal: Callable[[dict[str, Any]], str] | None = hook(cls, "go_marshal")
    if marshal is not None:
        return marshal(value)
    return "{" + ",".join(encode_members(cls, value)) + "}"


def encode_members(cls: type[GoStruct], value: dict[str, Any]) -> list[str]:
    """The encoded `"key":value` members of a struct, for custom marshalers to extend."""
    return [
        f"{encode_string(f.json_name)}:{encode(value[f.json_name], f.gotype)}"
        for f in flat_fields(cls)
        if not (f.omitempty and is_empty(value[f.json_name], f.gotype))
    ]


def encode_any(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            return encode_float(value)
        case Decimal():
            return encode_decimal(value)
        case str():
            return encode_string(value)
        case StructValue():
            return encode_struct(value.cls, value)
        case RawMessage():
            return value.text
        case GoMap():
            items = sorted(value.items())
            return "{" + ",".join(f"{encode_string(k)}:{encode_any(v)}" for k, v in items) + "}"
        case dict():
            return (
                "{"
                + ",".join(f"{encode_string(k)}:{encode_any(v)}" for k, v in value.items())
                + "}"
            )
        case list() | tuple():
            return "[" + ",".join(encode_any(item) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


def compact(value: Any) -> str:
    """A parsed value back to compact JSON text, numbers and repeated keys as they came."""
    match value:
        case Obj():
            return "{" + ",".join(f"{encode_string(k)}:{compact(v)}" for k, v in value) + "}"
        case list():
            return "[" + ",".join(compact(item) for item in value) + "]"
        case Num(literal=literal):
            return literal
    return encode_any(value)


def is_empty(value: Any, gotype: GoType) -> bool:
    """Go's omitempty, by kind (encoding/json and mapstructure agree): false, 0, "", empty
    slices and maps, and nil pointers and interfaces. A pointer to a zero value or an
    interface holding one is written, and a struct (a decimal too) never counts as empty."""
    match gotype:
        case Pointer() | Interface() | Raw():
            return value is None
        case Slice() | Map():
            return not value
        case Struct() | Scalar("decimal"):
            return False
        case _:
            return value is False or value == 0 or value == ""


def parse_value(text: str) -> Any:
    """A JSON text in the parsed form the decoder reads, or NOTHING if it is not JSON."""
    try:
        return _PARSER.decode(text)
    except (ValueError, RecursionError):
        return NOTHING
