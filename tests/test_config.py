"""Settings read from the daemon's environment names."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.config import STDIO_MAX_BUFFER_SIZE, RuntimeChoice, Settings, SettingsError


@pytest.mark.parametrize(
    ("env", "cap"),
    [
        ({}, STDIO_MAX_BUFFER_SIZE),
        ({"PLUGIN_RUNTIME_MAX_BUFFER_SIZE": "1024"}, 1024),
        ({"PLUGIN_STDIO_MAX_BUFFER_SIZE": "2048"}, 2048),
        # The daemon prefers the older name once it is set to neither its default nor 0.
        ({"PLUGIN_RUNTIME_MAX_BUFFER_SIZE": "1024", "PLUGIN_STDIO_MAX_BUFFER_SIZE": "2048"}, 2048),
        ({"PLUGIN_RUNTIME_MAX_BUFFER_SIZE": "1024", "PLUGIN_STDIO_MAX_BUFFER_SIZE": "0"}, 1024),
        (
            {
                "PLUGIN_RUNTIME_MAX_BUFFER_SIZE": "1024",
                "PLUGIN_STDIO_MAX_BUFFER_SIZE": str(STDIO_MAX_BUFFER_SIZE),
            },
            1024,
        ),
    ],
)
def test_the_stdout_cap_comes_from_the_daemons_names(env: dict[str, str], cap: int) -> None:
    settings = Settings.from_env(env)

    assert settings.stdio_max_buffer_size == cap
    assert settings.runtime_for(Path("/p")) == RuntimeChoice("inprocess", None, cap)


def test_every_plugins_runtime_gets_the_stdout_cap() -> None:
    settings = Settings.from_env(
        {"PLUGIN_RUNTIME_MAX_BUFFER_SIZE": "4096"},
        plugins=["/a::subprocess=/venv", "/b::inprocess"],
    )

    assert settings.runtime_for(Path("/a")) == RuntimeChoice("subprocess", Path("/venv"), 4096)
    assert settings.runtime_for(Path("/b")) == RuntimeChoice("inprocess", None, 4096)


@pytest.mark.parametrize("value", ["-1", "five"])
def test_a_stdout_cap_that_is_no_positive_int_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="PLUGIN_RUNTIME_MAX_BUFFER_SIZE"):
        Settings.from_env({"PLUGIN_RUNTIME_MAX_BUFFER_SIZE": value})
