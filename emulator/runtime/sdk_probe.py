"""Report what an installed dify-plugin SDK offers; run with that SDK's interpreter.

    /path/to/venv/bin/python -I sdk_probe.py [PLUGIN_DIR]

prints one JSON object on stdout: the interpreter, the SDK version, the names
``dify_plugin`` exports, and the SDK router's table (each routed
``(type, action)`` with its executor method, request class and request
fields), plus actions the SDK declares but does not route. Given a plugin
directory, it also registers the plugin with this SDK, as ``python -m main``
does first, and reports its identity and model providers or why it failed.

The router table is read the way the SDK builds it: a ``Plugin`` is created
without its constructor (which would start a transport), given an executor
stand-in whose methods are the real ``PluginExecutor`` methods, and asked to
register its routes. Each route's filter is then asked about every
``(type, action)`` pair the SDK's enums declare.

This file runs in a foreign interpreter: it imports only the standard library
and the SDK, never the emulator.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from enum import Enum
from types import ModuleType
from typing import Any

SDK_DISTRIBUTION = "dify-plugin"
REQUEST_MODULE = "dify_plugin.core.entities.plugin.request"


def main(argv: list[str]) -> int:
    answer = sys.stdout
    # The SDK and its logging may print; only the report goes to the real stdout.
    sys.stdout = sys.stderr
    facts = probe(argv[0] if argv else None)
    answer.write(json.dumps(facts, sort_keys=True) + "\n")
    answer.flush()
    return 0


def probe(plugin_directory: str | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "sdk_version": _installed_version(),
    }
    try:
        sdk = _import_sdk()
    except Exception as error:
        facts["import_error"] = f"{type(error).__name__}: {error}"
        return facts
    facts["exports"] = sorted(name for name in dir(sdk) if not name.startswith("_"))
    try:
        facts.update(_router_facts())
    except Exception as error:
        facts["router_error"] = f"{type(error).__name__}: {error}"
    if plugin_directory is not None:
        facts["plugin"] = _registration_facts(plugin_directory)
    return facts


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(SDK_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_sdk() -> ModuleType:
    # The SDK reads a .env in the working directory at import; the caller's is not the SDK's.
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as empty:
        os.chdir(empty)
        try:
            import dify_plugin

            return dify_plugin
        finally:
            os.chdir(previous)


def _router_facts() -> dict[str, Any]:
    import importlib

    requests = importlib.import_module(REQUEST_MODULE)
    declared = list(_declared_actions(requests))
    routes = _registered_routes()
    routed = []
    for invoke_type, action in declared:
        route = _route_for(routes, invoke_type, action)
        if route is not None:
            routed.append({"type": invoke_type, "action": action, **_describe(route)})
    routed_keys = {(entry["type"], entry["action"]) for entry in routed}
    unrouted = [
        {"type": invoke_type, "action": action}
        for invoke_type, action in declared
        if (invoke_type, action) not in routed_keys
    ]
    return {"routes": routed, "declared_unrouted": unrouted}


def _declared_actions(requests: ModuleType) -> Iterator[tuple[str, str]]:
    """Each ``(type, action)`` the enums declare: ``ToolActions`` belongs to ``Tool``."""
    invoke_types: type[Enum] = requests.PluginInvokeType
    for name, value in vars(requests).items():
        if not (isinstance(value, type) and issubclass(value, Enum)):
            continue
        if not name.endswith("Actions") or value.__module__ != requests.__name__:
            continue
        family = invoke_types.__members__.get(name.removesuffix("Actions"))
        if family is None:
            continue
        for action in value:
            yield str(family.value), str(action.value)


def _registered_routes() -> list[Any]:
    from dify_plugin import Plugin
    from dify_plugin.core.plugin_executor import PluginExecutor
    from dify_plugin.core.server.router import Router

    class ExecutorMethods:
        """Hands out the real executor methods, bound to an object that is never called."""

        def __getattr__(self, name: str) -> Any:
            return getattr(PluginExecutor, name).__get__(self)

    headless = object.__new__(Plugin)
    headless.plugin_executer = ExecutorMethods()  # the SDK's own spelling
    Router.__init__(headless, None, None)
    headless._register_request_routes()
    return list(headless.routes)


def _route_for(routes: list[Any], invoke_type: str, action: str) -> Any | None:
    data = {"type": invoke_type, "action": action}
    for route in routes:
        if route.filter(data):
            return route
    return None


def _describe(route: Any) -> dict[str, Any]:
    """The executor method and request class the route's wrapper closes over."""
    captured = [cell.cell_contents for cell in route.func.__closure__ or ()]
    method = next((value for value in captured if callable(value) and _is_method(value)), None)
    request_class = next((value for value in captured if _is_model_class(value)), None)
    description: dict[str, Any] = {
        "method": getattr(method, "__name__", None),
        "request_class": getattr(request_class, "__name__", None),
    }
    if request_class is not None:
        description["fields"] = sorted(request_class.model_fields)
    return description


def _is_method(value: Callable[..., Any]) -> bool:
    return hasattr(value, "__self__") and hasattr(value, "__func__")


def _is_model_class(value: object) -> bool:
    return isinstance(value, type) and hasattr(value, "model_fields")


def _registration_facts(directory: str) -> dict[str, Any]:
    """Register the plugin as the SDK does at start-up; report what it found or why not."""
    from dify_plugin import DifyPluginEnv
    from dify_plugin.core.plugin_registration import PluginRegistration

    directory = os.path.abspath(directory)
    os.chdir(directory)
    sys.path.insert(0, directory)
    try:
        registration = PluginRegistration(DifyPluginEnv(_env_file=None))
    except BaseException as error:
        return {"error": f"{type(error).__name__}: {error}"}
    configuration = registration.configuration
    return {
        "author": configuration.author,
        "name": configuration.name,
        "version": configuration.version,
        "providers": [_provider(config) for config in registration.models_configuration],
        "tools": _names_by_provider(registration, "tools_mapping", 2),
        "agent_strategies": _names_by_provider(registration, "agent_strategies_mapping", 1),
    }


def _names_by_provider(registration: Any, mapping: str, names_at: int) -> dict[str, list[str]]:
    """Provider name -> its tools (or strategies) in declaration order, from its tables."""
    table = getattr(registration, mapping, None) or {}
    return {str(provider): list(entry[names_at]) for provider, entry in table.items()}


def _provider(config: Any) -> dict[str, Any]:
    models: dict[str, list[str]] = {}
    for entity in config.models:
        models.setdefault(str(entity.model_type.value), []).append(entity.model)
    return {"name": config.provider, "models": models}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
