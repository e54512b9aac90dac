"""Plain YAML scalars resolved as gopkg.in/yaml.v3 resolves them.

The expected column was printed by the real yaml.v3 (Debian's golang-gopkg-yaml.v3, Go 1.19)
decoding `v: <scalar>` into an `any`; PyYAML's YAML 1.1 rules disagree on many rows.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.config import EXAMPLE_PLUGIN
from emulator.contract.goyaml import resolve_plain
from emulator.runtime.declaration import read_package

AS_YAML_V3_DECODES: list[tuple[str, str, Any]] = [
    ("1e5", "float", 100000.0),
    ("1.0e3", "float", 1000.0),
    ("+.5", "float", 0.5),
    ("1.", "float", 1.0),
    ("09", "float", 9.0),
    ("0777", "int", 511),
    ("0o17", "int", 15),
    ("0x1F", "int", 31),
    ("-0b101", "int", -5),
    ("1_000", "int", 1000),
    ("007", "int", 7),
    ("18446744073709551615", "int", 18446744073709551615),
    ("-9223372036854775809", "float", -9.223372036854776e18),
    ("+9223372036854775808", "float", 9.223372036854776e18),
    (".5_0", "float", 0.5),
    ("yes", "str", "yes"),
    ("on", "str", "on"),
    ("Off", "str", "Off"),
    ("tRue", "str", "tRue"),
    ("True", "bool", True),
    ("1:30", "str", "1:30"),
    ("1e400", "str", "1e400"),
    ("12abc", "str", "12abc"),
    ("0x", "str", "0x"),
    ("1.5e", "str", "1.5e"),
    (".", "str", "."),
    ("+", "str", "+"),
    ("~", "null", None),
    ("", "null", None),
    ("-.Inf", "float", -math.inf),
    ("2024-1-2 3:04:05", "timestamp", "2024-1-2 3:04:05"),
    ("2024-13-01", "str", "2024-13-01"),
]


@pytest.mark.parametrize(("text", "tag", "value"), AS_YAML_V3_DECODES)
def test_a_plain_scalar_resolves_as_yaml_v3_resolves_it(text: str, tag: str, value: Any) -> None:
    resolved_tag, resolved = resolve_plain(text)

    assert (resolved_tag, resolved, type(resolved)) == (tag, value, type(value))


def test_a_parameter_rule_bound_in_exponent_form_is_read_as_the_daemon_reads_it(
    tmp_path: Path,
) -> None:
    plugin = tmp_path / "echo"
    shutil.copytree(EXAMPLE_PLUGIN, plugin, ignore=shutil.ignore_patterns("__pycache__"))
    model_file = plugin / "models" / "llm" / "echo-1.yaml"
    model = yaml.safe_load(model_file.read_text())
    rule = next(r for r in model["parameter_rules"] if "max" in r)
    rule["max"] = "1e5"  # written unquoted below: YAML 1.1 calls it a string, yaml.v3 a float
    model_file.write_text(yaml.safe_dump(model).replace("'1e5'", "1e5"))

    package = read_package(plugin)

    (provider_model,) = [
        m for m in package.declaration["model"]["models"] if m["model"] == model["model"]
    ]
    (read_rule,) = [r for r in provider_model["parameter_rules"] if r["name"] == rule["name"]]
    assert read_rule["max"] == 100000.0
