"""Test aids: the pytest fixtures' emulator, journal assertions and faults.

Importing this package imports nothing heavy (no SDK, no server): each name below is
imported from its module the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.backwards import Backwards as Backwards
    from emulator.backwards import BackwardsCall as BackwardsCall
    from emulator.faults import CutAfter as CutAfter
    from emulator.faults import DelayBetweenItems as DelayBetweenItems
    from emulator.faults import DelayFirstItem as DelayFirstItem
    from emulator.faults import ErrorAnswer as ErrorAnswer
    from emulator.faults import Fault as Fault
    from emulator.faults import FaultRule as FaultRule
    from emulator.faults import Faults as Faults
    from emulator.faults import NoNode as NoNode
    from emulator.faults import PluginErrorItem as PluginErrorItem
    from emulator.faults import TimeoutItem as TimeoutItem
    from emulator.journal import ANY as ANY
    from emulator.journal import Dispatch as Dispatch
    from emulator.journal import Journal as Journal
    from emulator.journal import SessionSeen as SessionSeen
    from emulator.testing.assertions import JournalAssertionError as JournalAssertionError
    from emulator.testing.assertions import assert_called_back as assert_called_back
    from emulator.testing.assertions import assert_dispatched as assert_dispatched
    from emulator.testing.assertions import (
        assert_handlers_answered as assert_handlers_answered,
    )
    from emulator.testing.assertions import assert_never_dispatched as assert_never_dispatched
    from emulator.testing.assertions import (
        assert_no_contract_warnings as assert_no_contract_warnings,
    )
    from emulator.testing.assertions import assert_plugin_saw as assert_plugin_saw
    from emulator.testing.harness import DaemonEmulator as DaemonEmulator

_HOMES = {
    "ANY": "emulator.journal",
    "Backwards": "emulator.backwards",
    "BackwardsCall": "emulator.backwards",
    "CutAfter": "emulator.faults",
    "DaemonEmulator": "emulator.testing.harness",
    "DelayBetweenItems": "emulator.faults",
    "DelayFirstItem": "emulator.faults",
    "Dispatch": "emulator.journal",
    "ErrorAnswer": "emulator.faults",
    "Fault": "emulator.faults",
    "FaultRule": "emulator.faults",
    "Faults": "emulator.faults",
    "Journal": "emulator.journal",
    "JournalAssertionError": "emulator.testing.assertions",
    "NoNode": "emulator.faults",
    "PluginErrorItem": "emulator.faults",
    "SessionSeen": "emulator.journal",
    "TimeoutItem": "emulator.faults",
    "assert_called_back": "emulator.testing.assertions",
    "assert_dispatched": "emulator.testing.assertions",
    "assert_handlers_answered": "emulator.testing.assertions",
    "assert_never_dispatched": "emulator.testing.assertions",
    "assert_no_contract_warnings": "emulator.testing.assertions",
    "assert_plugin_saw": "emulator.testing.assertions",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'emulator.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
