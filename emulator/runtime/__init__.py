"""Plugin runtimes: how the emulator runs dify-plugin SDK plugins."""

from emulator.runtime.inprocess import (
    InProcessPlugin,
    PluginIdentity,
    PluginLoadError,
    RunningRequest,
    StreamClosed,
    directory_checksum,
)
from emulator.runtime.sdk import ProviderSummary, import_sdk, sdk_version

__all__ = [
    "InProcessPlugin",
    "PluginIdentity",
    "PluginLoadError",
    "ProviderSummary",
    "RunningRequest",
    "StreamClosed",
    "directory_checksum",
    "import_sdk",
    "sdk_version",
]
