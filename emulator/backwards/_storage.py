"""The daemon's plugin storage (persistence), kept in memory: storage calls never reach Dify."""

from __future__ import annotations

import posixpath
import threading
from typing import Any

from emulator.backwards._calls import Answer, BackwardsCall, go_format
from emulator.backwards._permissions import declared_permission

STORAGE_MISSING = "load data failed, please check if the key is correct or you have not set it"
MAX_KEY_LENGTH = 256


class MemoryStorage:
    """The daemon's plugin storage, in memory: per tenant, per plugin, per key."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, plugin_id: str, key: str) -> bytes | None:
        with self._lock:
            return self._values.get((tenant_id, plugin_id, key))

    def set(self, tenant_id: str, plugin_id: str, key: str, value: bytes) -> None:
        with self._lock:
            self._values[(tenant_id, plugin_id, key)] = bytes(value)

    def delete(self, tenant_id: str, plugin_id: str, key: str) -> bool:
        with self._lock:
            return self._values.pop((tenant_id, plugin_id, key), None) is not None

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def answer(self, call: BackwardsCall, answer: Answer) -> None:
        """executeDifyInvocationStorageTask, on this store."""
        opt, key, problem = _storage_request(call.request)
        if problem is not None:
            answer.error(f"unmarshal backwards invoke request failed: {problem}")
            return
        where = (call.tenant_id, call.plugin_id, key)
        traversal = _path_traversal(key)
        if opt == "get":
            value = None if traversal else self.get(*where)
            if value is None:
                answer.error(STORAGE_MISSING)
            else:
                answer.response("struct", {"data": value.hex()})
        elif opt == "set":
            self._save(call, where, traversal, answer)
        elif traversal:
            verb = "delete" if opt == "del" else "exist"
            answer.error(f"{verb} data failed: {traversal}")
        elif opt == "del":
            deleted = self.delete(*where)
            answer.response("struct", {"data": "ok", "deleted_num": int(deleted)})
        else:
            exists = self.get(*where) is not None
            answer.response("struct", {"data": exists, "exist_num": int(exists)})

    def _save(
        self,
        call: BackwardsCall,
        where: tuple[str, str, str],
        traversal: str | None,
        answer: Answer,
    ) -> None:
        data, hex_problem = _go_hex_decode(str(call.request.get("value", "")))
        if hex_problem is not None:
            answer.error(f"decode data failed: {hex_problem}")
            return
        with self._lock:
            problem = traversal or self._refusal(where, len(data), _quota(call))
            if problem is None:
                self._values[where] = data
        if problem is not None:
            answer.error(f"save data failed: {problem}")
            return
        answer.response("struct", {"data": "ok"})

    def _refusal(self, where: tuple[str, str, str], size: int, quota: int | None) -> str | None:
        """Persistence.Save's checks after the path: key length, then the plugin's quota."""
        tenant_id, plugin_id, key = where
        if len(key) > MAX_KEY_LENGTH:
            return "key length must be less than 256 characters"
        used = sum(
            len(value)
            for (tenant, plugin, other), value in self._values.items()
            if (tenant, plugin) == (tenant_id, plugin_id) and other != key
        )
        if quota is not None and used + size > quota:
            return "allocated size is greater than max storage size"
        return None


def _quota(call: BackwardsCall) -> int | None:
    """`resource.permission.storage.size` of the manifest (None: the daemon's own limit)."""
    storage = declared_permission(call.caller.plugin_directory).get("storage")
    size = storage.get("size") if isinstance(storage, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _path_traversal(key: str) -> str | None:
    """Persistence.checkPathTraversal: Go's path.Clean, then no `..`, `//` or backslash."""
    cleaned = posixpath.normpath(key) if key else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if ".." in cleaned or "//" in cleaned or "\\" in cleaned:
        return "invalid key: path traversal attempt detected"
    return None


def _storage_request(request: dict[str, Any]) -> tuple[str, str, str | None]:
    """InvokeStorageRequest through mapstructure and the validator (the checks that bite)."""
    for name in ("opt", "key", "value"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            return (
                "",
                "",
                (
                    "error decoding map: 1 error(s) decoding:\n\n"
                    f"* '{name}' expected type 'string', got unconvertible type"
                    f" '{_go_kind(value)}', value: '{go_format(value)}'"
                ),
            )
    opt, key = request.get("opt") or "", request.get("key") or ""
    errors = []
    if not opt:
        errors.append(_field_error("Opt", "required"))
    elif opt not in ("get", "set", "del", "exist"):
        errors.append(_field_error("Opt", "storage_opt"))
    if not key:
        errors.append(_field_error("Key", "required"))
    if errors:
        return "", "", "error validating struct: " + "\n".join(errors)
    return opt, key, None


def _field_error(name: str, tag: str) -> str:
    return (
        f"Key: 'InvokeStorageRequest.{name}' Error:Field validation for '{name}'"
        f" failed on the '{tag}' tag"
    )


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "[]interface {}"


def _go_hex_decode(text: str) -> tuple[bytes, str | None]:
    """hex.DecodeString, with Go's error texts."""
    for index, char in enumerate(text):
        if char not in "0123456789abcdefABCDEF":
            if index == len(text) - 1 and len(text) % 2 == 1:
                break
            return b"", f"encoding/hex: invalid byte: U+{ord(char):04X} {_go_quote(char)}"
    if len(text) % 2 == 1:
        return b"", "encoding/hex: odd length hex string"
    return bytes.fromhex(text), None


def _go_quote(char: str) -> str:
    return "'\\''" if char == "'" else f"'{char}'"
