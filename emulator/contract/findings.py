"""Contract warnings: each place where the real daemon silently drops or coerces input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WarningKind(StrEnum):
    UNKNOWN_KEY = "unknown_key"
    KEY_CASE = "key_case"
    DUPLICATE_KEY = "duplicate_key"
    TYPE_MISMATCH = "type_mismatch"
    ID_COERCED = "id_coerced"
    NULL_TO_ZERO = "null_to_zero"
    PRECISION_LOST = "precision_lost"
    NUMBER_OVERFLOW = "number_overflow"
    DECODE_ABORTED = "decode_aborted"
    MALFORMED_JSON = "malformed_json"
    TRAILING_DATA = "trailing_data"
    INVALID_UTF8 = "invalid_utf8"
    BODY_IGNORED = "body_ignored"
    IGNORED_FIELD = "ignored_field"
    TENANT_OVERRIDDEN = "tenant_overridden"
    SDK_REJECTS = "sdk_rejects"
    UNVALIDATED_ELEMENT = "unvalidated_element"
    TENANT_NOT_UUID = "tenant_not_uuid"


@dataclass(frozen=True)
class ContractWarning:
    kind: WarningKind
    path: str
    """A JSON path from the body's root, like `$.data.prompt_messages[0].role`."""
    expected: str
    actual: str
    effect: str
    """What the daemon does about it."""

    @property
    def detail(self) -> str:
        return f"expected {self.expected}, got {self.actual}; {self.effect}"

    def __str__(self) -> str:
        return f"{self.kind} {self.path}: {self.detail}"
