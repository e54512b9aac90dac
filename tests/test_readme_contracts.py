"""The README's contract examples run as written."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

SECTION = re.search(
    r"^## Contracts.*?(?=^## )", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL
)
BLOCKS = re.findall(r"```(python|sh)\n(.*?)```", SECTION.group(0) if SECTION else "", re.DOTALL)


def test_the_section_has_examples_for_each_user() -> None:
    assert [language for language, _ in BLOCKS] == ["python", "python", "python", "sh"]


@pytest.mark.parametrize("code", [code for language, code in BLOCKS if language == "python"])
def test_each_python_example_runs(code: str, tmp_path: Path) -> None:
    example = tmp_path / "readme_example.py"
    example.write_text(code)  # a real file: hypothesis reads its tests' source

    runpy.run_path(str(example), run_name="readme_example")


@pytest.mark.parametrize("script", [code for language, code in BLOCKS if language == "sh"])
def test_each_shell_example_runs_from_the_repository(script: str) -> None:
    script = script.replace("python -m emulator", f"{sys.executable} -m emulator")
    result = subprocess.run(
        ["bash", "-euc", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no changes" in result.stdout
