"""Running pytest on a small project of its own, as a user of the installed package would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on `project` as its own rootdir, in a clean environment."""
    # pytest prints untruncated summaries under CI or BUILD_NUMBER: keep the output one shape.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PLUGIN_DAEMON_", "PYTEST_")) and name not in ("CI", "BUILD_NUMBER")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
