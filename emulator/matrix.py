"""The SDK version matrix: one plugin, the same checks, several dify-plugin versions.

Each version gets a virtual environment of its own (``python -m venv`` plus
``pip install dify-plugin==X``), cached outside the project and reused. In each,
a probe (``emulator/runtime/sdk_probe.py``, run by that interpreter) reports what
the SDK offers: its router's table, its request fields, ``get_current_session``.
Then the plugin is loaded through the subprocess runtime with that interpreter,
behind an emulator app in this process, and checked over HTTP (see
``emulator._matrix_checks``): does it load, does model or tool code see
``app_id``, which dispatch routes get an answer rather than the SDK's bare
``end``. A version that cannot run the plugin is a row that says why, never a
crash.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emulator._matrix_checks import (
    PluginChecks,
    PluginLoader,
    RouteOutcome,
    check_plugin,
    load_with_subprocess_runtime,
    shorten,
)
from emulator.runtime import PluginLoadError, sdk_probe
from emulator.runtime.packages import is_package, unpack

CACHE_ENV = "EMULATOR_SDK_CACHE"
DEFAULT_VERSIONS = ("0.7.4", "0.9.1", "0.10.2")
READY_MARKER = ".emulator-sdk-ready"
INSTALL_TIMEOUT = 600.0
PROBE_TIMEOUT = 120.0
_VERSION = re.compile(r"\d+(\.\d+){0,3}((a|b|rc|\.post|\.dev)\d+)?")

# Names plugins import from the SDK, and the first release that has them. A name not listed
# here is explained from the versions in the matrix instead.
FIRST_RELEASE_WITH = {
    "get_current_session": "0.10.0",  # langgenius/dify-plugin-sdks 1ef5b029 (#313)
    "dify_plugin.core.session_context": "0.10.0",
}


class MatrixError(Exception):
    """A version the matrix cannot set up, or a plugin path it cannot use; says which and why."""


@dataclass(frozen=True)
class SdkEnvironment:
    """A virtual environment with one dify-plugin version installed."""

    version: str
    directory: Path

    @property
    def python(self) -> Path:
        return self.directory / "bin" / "python"


def default_cache_directory() -> Path:
    """``$EMULATOR_SDK_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, then our folder."""
    if configured := os.environ.get(CACHE_ENV):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dify-plugin-emulator"


def checked_version(version: str) -> str:
    """Return ``version`` if it is a plain release number; it ends up in a path and pip."""
    if not _VERSION.fullmatch(version):
        raise MatrixError(f"--sdk {version!r}: expected a release number such as 0.10.2")
    return version


def provision(version: str, cache: Path, base_python: str = sys.executable) -> SdkEnvironment:
    """Return the environment for ``version``, creating it once (a lock guards the creation)."""
    environment = SdkEnvironment(checked_version(version), cache / f"sdk-{version}")
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"sdk-{version}.lock"):
        if not (environment.directory / READY_MARKER).is_file():
            _create(environment, base_python)
    return environment


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create(environment: SdkEnvironment, base_python: str) -> None:
    # A half-built environment from an interrupted run is never trusted.
    shutil.rmtree(environment.directory, ignore_errors=True)
    _run_or_fail(environment, [base_python, "-m", "venv", str(environment.directory)])
    pip = [str(environment.python), "-m", "pip", "install", "--disable-pip-version-check"]
    _run_or_fail(environment, [*pip, "--quiet", f"dify-plugin=={environment.version}"])
    (environment.directory / READY_MARKER).write_text(environment.version + "\n")


def _run_or_fail(environment: SdkEnvironment, command: list[str]) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        message = f"dify-plugin {environment.version}: `{' '.join(command)}`: {error}"
        raise MatrixError(message) from error
    if done.returncode != 0:
        tail = _tail(done.stderr or done.stdout)
        raise MatrixError(
            f"dify-plugin {environment.version}: `{' '.join(command)}` "
            f"exited with {done.returncode}: {tail}"
        )


def probe_sdk(environment: SdkEnvironment, plugin: Path | None = None) -> dict[str, Any]:
    """What the SDK in ``environment`` offers, as ``sdk_probe`` reports it.

    With ``plugin``, ``facts["plugin"]`` says whether that SDK registers the plugin.
    """
    # -I: the script's own folder (emulator/runtime, which has a subprocess.py) stays off
    # sys.path, so the probe sees the standard library and the SDK only.
    command = [str(environment.python), "-I", sdk_probe.__file__]
    if plugin is not None:
        command.append(str(plugin))
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
        facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        return {"probe_error": f"{type(error).__name__}: {error}"}
    return facts


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


@dataclass
class VersionReport:
    """Everything the matrix learnt about one dify-plugin version."""

    version: str
    setup_error: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    checks: PluginChecks | None = None
    explanation: str = ""


@dataclass
class Matrix:
    plugin: Path
    requirement: str | None
    """The plugin's own dify_plugin line from requirements.txt, if it has one."""
    versions: list[VersionReport]


def run_matrix(
    plugin: Path,
    versions: Sequence[str],
    cache: Path | None = None,
    loader: PluginLoader = load_with_subprocess_runtime,
    base_python: str = sys.executable,
    progress: Callable[[str], None] = lambda message: None,
) -> Matrix:
    """Set up each version (once), probe its SDK, and check the plugin under it."""
    plugin = plugin.resolve()
    cache = default_cache_directory() if cache is None else cache
    reports = [_version_report(plugin, v, cache, loader, base_python, progress) for v in versions]
    for report in reports:
        if report.checks is not None and not report.checks.loads:
            report.explanation = explain_load_failure(_load_cause(report), report, reports)
    return Matrix(plugin, sdk_requirement(plugin), reports)


def _version_report(
    plugin: Path,
    version: str,
    cache: Path,
    loader: PluginLoader,
    base_python: str,
    progress: Callable[[str], None],
) -> VersionReport:
    progress(f"dify-plugin {version}: environment in {cache / f'sdk-{version}'}")
    try:
        environment = provision(version, cache, base_python)
    except MatrixError as error:
        return VersionReport(version, setup_error=str(error))
    progress(f"dify-plugin {version}: probing the SDK and the plugin")
    facts = probe_sdk(environment, plugin)
    checks = check_plugin(plugin, environment.python, facts.get("plugin") or {}, loader)
    return VersionReport(version, facts=facts, checks=checks)


def _load_cause(report: VersionReport) -> str:
    # The probe's registration error is the bare exception; the runtime's wraps a stderr tail.
    registration_error = (report.facts.get("plugin") or {}).get("error")
    if registration_error:
        return str(registration_error)
    return report.checks.load_error if report.checks else ""


def explain_load_failure(cause: str, report: VersionReport, reports: list[VersionReport]) -> str:
    """Say in a few words why this SDK version cannot load the plugin."""
    if missing := re.search(r"cannot import name '(\w+)' from '([\w.]+)'", cause):
        return _needs(missing.group(1), report, reports)
    if missing := re.search(r"No module named '([\w.]+)'", cause):
        module = missing.group(1)
        if module.split(".")[0] != "dify_plugin":
            return f"needs {module!r} installed; the matrix installs dify-plugin only"
        return _needs(module, report, reports)
    if refused := re.search(
        r"validation error for \w+\s+(\S+)\s+Input should be .*?input_value=('[^']*'|\S+?),",
        cause,
        re.DOTALL,
    ):
        location, value = refused.groups()
        return f"does not know {value} at {location}"
    return shorten(cause.strip().splitlines()[-1] if cause.strip() else "no reason given")


def _needs(name: str, report: VersionReport, reports: list[VersionReport]) -> str:
    short_name = name.rsplit(".", 1)[-1] if name.startswith("dify_plugin.") else name
    if first := FIRST_RELEASE_WITH.get(name):
        return f"needs >= {first} for {short_name}"
    having = [other.version for other in reports if name in other.facts.get("exports", [])]
    if having:
        return f"needs {short_name}, which dify-plugin {', '.join(having)} has"
    return f"dify-plugin {report.version} has no {short_name}"


def sdk_requirement(plugin: Path) -> str | None:
    """The plugin's requirements.txt line for dify_plugin (the version it pins), if any."""
    requirements = plugin / "requirements.txt"
    if not requirements.is_file():
        return None
    for line in requirements.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        name = re.match(r"[A-Za-z0-9._-]+", text)
        if name and re.sub(r"[-_.]+", "-", name.group(0)).lower() == "dify-plugin":
            return text
    return None


def requirement_allows(requirement: str | None, version: str) -> bool | None:
    """Whether the plugin's own pin accepts ``version``; None when there is no usable pin."""
    from packaging.requirements import InvalidRequirement, Requirement

    if requirement is None:
        return None
    try:
        return Requirement(requirement).specifier.contains(version, prereleases=True)
    except InvalidRequirement:
        return None


def as_json(matrix: Matrix) -> dict[str, Any]:
    """The matrix as plain data: per version, the facts, the checks and the explanation."""
    return {
        "plugin": str(matrix.plugin),
        "requirement": matrix.requirement,
        "versions": [_version_json(matrix, report) for report in matrix.versions],
    }


def _version_json(matrix: Matrix, report: VersionReport) -> dict[str, Any]:
    facts = report.facts
    checks = report.checks
    return {
        "version": report.version,
        "setup_error": report.setup_error or None,
        "installed": facts.get("sdk_version"),
        "python": facts.get("python"),
        "requirement_allows": requirement_allows(matrix.requirement, report.version),
        "get_current_session": "get_current_session" in facts.get("exports", []),
        "routes": facts.get("routes", []),
        "declared_unrouted": facts.get("declared_unrouted", []),
        "probe_error": _probe_error(facts),
        "registration": facts.get("plugin"),
        "loads": checks.loads if checks else None,
        "load_error": (checks.load_error or None) if checks else None,
        "explanation": report.explanation or None,
        "app_id": checks.app_id if checks else None,
        "tool_app_id": checks.tool_app_id if checks else None,
        "http": [asdict(outcome) for outcome in checks.routes] if checks else [],
    }


def _probe_error(facts: dict[str, Any]) -> str | None:
    for key in ("probe_error", "import_error", "router_error"):
        if facts.get(key):
            return str(facts[key])
    return None


Row = tuple[str, list[str]]


def render(matrix: Matrix) -> str:
    """The matrix as a text table, one column per version, with notes below."""
    reports = matrix.versions
    notes: list[str] = []
    rows: list[Row] = [("dify-plugin", [report.version for report in reports])]
    rows += _summary_rows(matrix, notes)
    rows += _action_rows(reports)
    rows += _field_rows(reports)
    rows += _http_rows(reports, notes)
    widths = [max(len(label) for label, _ in rows)]
    widths += [max(len(cells[i]) for _, cells in rows) for i in range(len(reports))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip([label, *cells], widths, strict=True))
        for label, cells in rows
    ]
    header = f"SDK matrix for {matrix.plugin}"
    return "\n".join([header, "", *(line.rstrip() for line in lines), "", *notes]).rstrip()


def _summary_rows(matrix: Matrix, notes: list[str]) -> list[Row]:
    reports = matrix.versions
    pin = matrix.requirement or "no dify_plugin line"
    allowed = [_yes_no(requirement_allows(matrix.requirement, r.version)) for r in reports]
    return [
        ("environment", [_environment(r, notes) for r in reports]),
        ("python", [r.facts.get("python") or "-" for r in reports]),
        (f"requirements.txt ({pin}) allows it", allowed),
        ("get_current_session", [_yes_no(_has_session(r)) for r in reports]),
        ("loads the plugin", [_loads(r, notes) for r in reports]),
        (
            "app_id reaches model code",
            [_app_id_cell(r, "app_id", notes) for r in reports],
        ),
        (
            "app_id reaches tool code",
            [_app_id_cell(r, "tool_app_id", notes) for r in reports],
        ),
    ]


def _app_id_cell(report: VersionReport, check: str, notes: list[str]) -> str:
    if report.checks is None or not report.checks.loads:
        return "-"
    found: str = getattr(report.checks, check)
    verdict, _, detail = found.partition(" (")
    if not detail or verdict == "n/a":
        return verdict
    return _noted(verdict, f"{report.version}: app_id {verdict}: {detail.rstrip(')')}", notes)


def _environment(report: VersionReport, notes: list[str]) -> str:
    if report.setup_error:
        return _noted("failed", f"{report.version}: {report.setup_error}", notes)
    if error := _probe_error(report.facts):
        return _noted("probe failed", f"{report.version}: {error}", notes)
    installed = report.facts.get("sdk_version")
    return "ready" if installed == report.version else f"ready ({installed} installed)"


def _noted(cell: str, note: str, notes: list[str]) -> str:
    notes.append(f"[{len(notes) + 1}] {shorten(note, 300)}")
    return f"{cell} [{len(notes)}]"


def _has_session(report: VersionReport) -> bool | None:
    if "exports" not in report.facts:
        return None
    return "get_current_session" in report.facts["exports"]


def _loads(report: VersionReport, notes: list[str]) -> str:
    if report.checks is None:
        return "-"
    if report.checks.loads:
        return "yes"
    return _noted(f"no: {report.explanation}", f"{report.version}: {_load_cause(report)}", notes)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _routed(report: VersionReport) -> dict[str, dict[str, Any]]:
    return {f"{r['type']}/{r['action']}": r for r in report.facts.get("routes", [])}


def _section(title: str, rows: list[Row], width: int) -> list[Row]:
    """A heading row above ``rows``, or nothing when there are none."""
    return [(title, [""] * width), *rows] if rows else []


def _action_rows(reports: list[VersionReport]) -> list[Row]:
    """Per family, how many actions the SDK routes; then each action not routed everywhere."""
    routed = [_routed(report) for report in reports]
    actions = sorted(set().union(*routed))
    families = sorted({action.split("/")[0] for action in actions})
    rows: list[Row] = []
    for family in families:
        counts = [sum(a.startswith(f"{family}/") for a in table) for table in routed]
        rows.append((f"  {family}", [str(count) for count in counts]))
        for action in [a for a in actions if a.startswith(f"{family}/")]:
            if not all(action in table for table in routed):
                cells = ["yes" if action in table else "no (bare end)" for table in routed]
                rows.append((f"    {action.split('/', 1)[1]}", cells))
    return _section("actions the SDK routes", rows, len(reports))


def _field_rows(reports: list[VersionReport]) -> list[Row]:
    """Request fields an action's request class has in some versions only."""
    routed = [_routed(report) for report in reports]
    rows: list[Row] = []
    for action in sorted(set().union(*routed)):
        fields_by_version = [
            set(table[action]["fields"]) if action in table else None for table in routed
        ]
        known = [fields for fields in fields_by_version if fields is not None]
        for name in sorted(set().union(*known) - set.intersection(*known)):
            cells = ["-" if f is None else _yes_no(name in f) for f in fields_by_version]
            rows.append((f"  {action}: {name}", cells))
    return _section("request fields the SDK passes on", rows, len(reports))


def _http_rows(reports: list[VersionReport], notes: list[str]) -> list[Row]:
    """One row per probed dispatch route, for the versions that loaded the plugin."""
    checked = [report.checks.routes if report.checks else [] for report in reports]
    outcomes = next((c for c in checked if c), [])
    rows: list[Row] = []
    for path in [o.route for o in outcomes if o.outcome != "not probed"]:
        cells = [_outcome_cell(next((o for o in c if o.route == path), None)) for c in checked]
        rows.append((f"  {path}", cells))
    if unprobed := [o.route for o in outcomes if o.outcome == "not probed"]:
        notes.append(
            f"Not probed over HTTP (the matrix has no body for them): {', '.join(unprobed)}"
        )
    return _section("answers over HTTP (POST /plugin/{tenant}/dispatch/...)", rows, len(reports))


def _outcome_cell(outcome: RouteOutcome | None) -> str:
    if outcome is None:
        return "-"
    if outcome.outcome == "plugin error":
        return f"error: {outcome.detail.split(':', 1)[0]}"
    return outcome.outcome


def add_matrix_command(commands: Any) -> argparse.ArgumentParser:
    """Add ``matrix`` to the CLI's subcommands; run it with :func:`matrix_command`."""
    matrix = commands.add_parser(
        "matrix",
        help="check one plugin under several dify-plugin versions",
        description="Exit 0 when every version the plugin's requirements.txt allows loads "
        "it, 1 when one does not, 2 on bad input.",
    )
    matrix.add_argument("plugin", type=Path, help="the plugin folder or .difypkg package")
    matrix.add_argument(
        "--sdk",
        action="append",
        metavar="VERSION",
        help=f"a dify-plugin version (repeatable); default: {' '.join(DEFAULT_VERSIONS)}",
    )
    matrix.add_argument(
        "--cache",
        type=Path,
        help=f"where the environments live; default: ${CACHE_ENV} or ~/.cache/dify-plugin-emulator",
    )
    matrix.add_argument(
        "--python", default=sys.executable, help="the interpreter to create them with"
    )
    matrix.add_argument("--json", action="store_true", help="print the matrix as JSON")
    matrix.add_argument(
        "--verbose", action="store_true", help="show the plugins' stderr and log lines"
    )
    return matrix


def matrix_command(args: argparse.Namespace) -> int:
    """Run ``python -m emulator matrix``; see :func:`add_matrix_command` for the exit status."""
    versions = args.sdk or list(DEFAULT_VERSIONS)
    try:
        for version in versions:
            checked_version(version)
        with _plugin_folder(args.plugin) as folder:
            if not args.verbose:
                # The plugins' own stderr and logs; the table's notes carry what matters.
                logging.getLogger("emulator").addHandler(logging.NullHandler())
            matrix = run_matrix(
                folder, versions, args.cache, base_python=args.python, progress=_to_stderr
            )
    except (MatrixError, PluginLoadError) as error:
        print(f"matrix: {error}", file=sys.stderr)
        return 2
    matrix.plugin = args.plugin
    print(json.dumps(as_json(matrix), indent=2) if args.json else render(matrix))
    return 1 if pinned_versions_failing(matrix) else 0


@contextmanager
def _plugin_folder(plugin: Path) -> Iterator[Path]:
    """The plugin's folder; a .difypkg package is unpacked into a private one for the run."""
    if is_package(plugin):
        unpacked = unpack(plugin)
        try:
            yield Path(unpacked.name)
        finally:
            unpacked.cleanup()
        return
    if not (plugin / "manifest.yaml").is_file():
        raise MatrixError(f"{plugin}: no manifest.yaml, not a plugin folder or .difypkg")
    yield plugin


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pinned_versions_failing(matrix: Matrix) -> list[str]:
    """Versions the plugin's own requirement allows that do not load it."""
    return [
        report.version
        for report in matrix.versions
        if requirement_allows(matrix.requirement, report.version)
        and not (report.checks and report.checks.loads)
    ]
