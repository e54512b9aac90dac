"""Plain YAML scalars as gopkg.in/yaml.v3 resolves them (resolve.go), not as PyYAML does.

PyYAML follows YAML 1.1: `1e5` is a string there (its float pattern wants a dot), while
`yes`, `on` and `1:30` are a bool and a number. yaml.v3 follows 1.2 with a few 1.1 leftovers:
bools are only true/false, ints take Go's base prefixes and old-style octals, floats are any
`[-+]?(.d+|d+(.d*)?)([eE][-+]?d+)?`, and a number out of range is a string. The daemon reads
every plugin YAML through yaml.v3, so the emulator composes with `GoYamlLoader`, which leaves
plain scalars unresolved, and resolves them here.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import yaml

PLAIN = "tag:emulator,2026:plain"
"""The tag `GoYamlLoader` gives a plain scalar; `resolve` decides what it is."""

_RESERVED: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("true", "True", "TRUE"), ("bool", True)),
    **dict.fromkeys(("false", "False", "FALSE"), ("bool", False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), ("null", None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), ("float", math.nan)),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), ("float", math.inf)),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), ("float", -math.inf)),
    "<<": ("merge", "<<"),
}
_HINTED = frozenset("+-0123456789yYnNtTfFoO~.")
"""First characters yaml.v3 looks any further at; every other scalar is a string."""
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.?[0-9]*)([eE][-+]?[0-9]+)?")
_CLOCK = r"[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?"
_ZONE = r"(?:Z|[-+][0-9]{2}:[0-9]{2})"
_TIMESTAMP = re.compile(rf"[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}(?:[Tt]{_CLOCK}{_ZONE}| {_CLOCK})?")
"""The layouts yaml.v3 tries (RFC 3339 with short fields, space-separated, date only)."""
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdef"}
INT64 = (-(2**63), 2**63 - 1)


class GoYamlLoader(yaml.SafeLoader):
    """Composes YAML as PyYAML does, but leaves plain scalars for `resolve`."""

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return PLAIN
        return str(super().resolve(kind, value, implicit))


def resolve(node: yaml.ScalarNode) -> tuple[str, Any]:
    """The node's short tag (`str`, `int`, `float`, `bool`, `null`, `timestamp`, ...) and
    value as yaml.v3 decodes it into an `any`; a timestamp keeps its text, as v3 does there."""
    if node.tag != PLAIN:
        value = yaml.SafeLoader("").construct_object(node, deep=True)
        return node.tag.rsplit(":", 1)[-1], value
    return resolve_plain(node.value)


def resolve_plain(text: str) -> tuple[str, Any]:
    if text in _RESERVED:
        return _RESERVED[text]
    if not text or text[0] not in _HINTED or text[0] in "yYnNtTfFoO~":
        return "str", text
    if text[0] == ".":
        number = _go_parse_float(text)
        return ("str", text) if number is None else ("float", number)
    if _is_timestamp(text):
        return "timestamp", text
    return _number(text.replace("_", "")) or ("str", text)


def _is_timestamp(text: str) -> bool:
    """time.Parse with one of yaml.v3's layouts: the shape, and a real date and time of day."""
    if not _TIMESTAMP.fullmatch(text):
        return False
    fields = [int(part) for part in re.findall(r"[0-9]+", text)[:6]]
    year, month, day, hour, minute, second = fields + [0] * (6 - len(fields))
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _number(plain: str) -> tuple[str, Any] | None:
    integer = _go_parse_int(plain)
    if integer is not None and (INT64[0] <= integer < 2**64):
        return "int", integer
    if _YAML_FLOAT.fullmatch(plain):
        number = _go_parse_float(plain)
        if number is not None:
            return "float", number
    return None


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) without its range check: Go's prefixes, and a leading
    0 for octal."""
    sign, digits = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    base = 10
    if len(digits) > 1 and digits[0] == "0":
        prefix = digits[1].lower()
        base, digits = {"x": (16, digits[2:]), "o": (8, digits[2:]), "b": (2, digits[2:])}.get(
            prefix, (8, digits[1:])
        )
    if not digits or any(char not in _DIGITS[base] for char in digits.lower()):
        return None
    value = int(digits, base)
    if sign == "+" and value > INT64[1]:
        return None  # ParseUint takes no sign
    return -value if sign == "-" else value


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for decimal text: None where Go fails, out of range too.
    Like Python, Go takes underscores between digits (`.5_0`)."""
    if not _GO_FLOAT.fullmatch(text.replace("_", "")):
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isinf(number) else number
