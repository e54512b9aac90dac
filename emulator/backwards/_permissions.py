"""The daemon's permission check: which manifest switches each invoke type needs
(backwards_invocation/task.go permissionMapping, plugin_declaration.go AllowInvoke*)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PERMISSIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # invoke type: (manifest switches that must all be on, the name in the daemon's refusal)
    "tool": (("tool",), "tool"),
    "llm": (("model", "model.llm"), "llm"),
    "llm_structured_output": (("model", "model.llm"), "llm"),
    "system_summary": (("model", "model.llm"), "llm"),
    "text_embedding": (("model", "model.text_embedding"), "text-embedding"),
    "multimodal_embedding": (("model", "model.text_embedding"), "text-embedding"),
    "rerank": (("model", "model.rerank"), "rerank"),
    "multimodal_rerank": (("model", "model.rerank"), "rerank"),
    "tts": (("model", "model.tts"), "tts"),
    "speech2text": (("model", "model.speech2text"), "speech2text"),
    "moderation": (("model", "model.moderation"), "moderation"),
    "node_parameter_extractor": (("node",), "node"),
    "node_question_classifier": (("node",), "node"),
    "app": (("app",), "app"),
    "fetch_app": (("app",), "app"),
    "storage": (("storage",), "storage"),
    "upload_file": ((), "storage"),
}


def permission_denial(invoke_type: str, plugin_directory: Path | None) -> str | None:
    """The daemon's refusal for a call the plugin's manifest does not permit, or None."""
    rule = PERMISSIONS.get(invoke_type)
    if rule is None:
        return f"unsupported invoke type: {invoke_type}"
    switches, name = rule
    permission = declared_permission(plugin_directory)
    if all(_switched_on(permission, switch) for switch in switches):
        return None
    return f"permission denied, you need to enable {name} access in plugin manifest"


def declared_permission(plugin_directory: Path | None) -> dict[str, Any]:
    """`resource.permission` of the plugin's manifest.yaml ({} when it declares none)."""
    if plugin_directory is None:
        return {}
    return _read_permission(Path(plugin_directory) / "manifest.yaml")


_permission_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _read_permission(manifest: Path) -> dict[str, Any]:
    try:
        changed = manifest.stat().st_mtime
    except OSError:
        return {}
    cached = _permission_cache.get(manifest)
    if cached is not None and cached[0] == changed:
        return cached[1]
    document = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    resource = document.get("resource") if isinstance(document, dict) else None
    permission = resource.get("permission") if isinstance(resource, dict) else None
    found = permission if isinstance(permission, dict) else {}
    _permission_cache[manifest] = (changed, found)
    return found


def _switched_on(permission: dict[str, Any], switch: str) -> bool:
    section, _, flag = switch.partition(".")
    entry = permission.get(section)
    if not isinstance(entry, dict):
        return False
    return entry.get(flag or "enabled") is True
