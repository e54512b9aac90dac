"""Plugin runtimes: how the emulator runs dify-plugin SDK plugins."""

from emulator.runtime.inprocess import InProcessPlugin, RunningRequest
from emulator.runtime.plugin import (
    PluginIdentity,
    PluginLoadError,
    StreamClosed,
    directory_checksum,
)
from emulator.runtime.registry import PluginRuntime, PluginSet
from emulator.runtime.sdk import ProviderSummary, import_sdk, sdk_version
from emulator.runtime.subprocess import PluginUnavailableError, SubprocessPlugin

__all__ = [
    "InProcessPlugin",
    "PluginIdentity",
    "PluginLoadError",
    "PluginRuntime",
    "PluginSet",
    "PluginUnavailableError",
    "ProviderSummary",
    "RunningRequest",
    "StreamClosed",
    "SubprocessPlugin",
    "directory_checksum",
    "import_sdk",
    "sdk_version",
]
