"""The README's examples for Dify and SDK users are tests: they run here, as written.

Each section's ```python blocks, in order, make one test module, and its ```ini block (if
any) the project's pytest.ini; its ```sh blocks run first, in the project's directory, with
this environment's `python`. The project is run by pytest in a subprocess, so only the
installed package is in play. Snippets that need Dify itself are fenced ```py and not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from projects import run_pytest

README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def blocks(text: str, language: str) -> list[str]:
    return [body for info, body in FENCE.findall(text) if info == language]


@pytest.mark.parametrize(
    ("title", "tests"),
    [("Use it from the Dify repository", 4), ("Use it from the SDK repository", 3)],
)
def test_the_readme_examples_run_as_written(tmp_path: Path, title: str, tests: int) -> None:
    text = section(title)
    ini = blocks(text, "ini") or ["[pytest]\n"]
    (tmp_path / "pytest.ini").write_text(ini[0])
    (tmp_path / "test_readme_example.py").write_text("\n\n".join(blocks(text, "python")))
    for script in blocks(text, "sh"):
        run_sh(script, tmp_path)

    result = run_pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout


def run_sh(script: str, directory: Path) -> None:
    """A README shell step, with this environment's python first on the PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=directory,
        env={**os.environ, "PATH": path},
        check=True,
        timeout=60,
    )


def test_the_sections_are_where_the_readme_promises_them() -> None:
    titles = re.findall(r"^## (.+)$", README.read_text(), re.MULTILINE)

    assert titles.index("Use it from the Dify repository") < titles.index("Limitations")
    assert titles.index("Use it from the SDK repository") < titles.index("Limitations")
