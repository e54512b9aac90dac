"""`python -m emulator serve`: load every plugin, then open the port."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from emulator.backwards import Backwards, BackwardsSettings
from emulator.config import KEEP_ALIVE_SECONDS, RUNTIMES, Settings, SettingsError
from emulator.contract.diff import UnusableContract, as_json, diff, render
from emulator.contract.export import write_contracts
from emulator.matrix import add_matrix_command, matrix_command
from emulator.runtime import PluginLoadError, import_sdk
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app

logger = logging.getLogger("emulator")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "contracts":
        return contracts(args)
    if args.command == "matrix":
        return matrix_command(args)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            key=args.key,
            strict=args.strict or None,
            plugins=args.plugin,
            journal_cap=args.journal_cap,
            runtime=args.runtime,
            python=args.python,
        )
        backwards = Backwards(BackwardsSettings.from_env())
    except (SettingsError, ValueError) as error:
        parser.error(str(error))
    try:
        import_sdk()
    except ValueError as error:
        parser.error(f"the dify-plugin SDK refuses its settings from the environment: {error}")
    return serve(settings, backwards)


def serve(settings: Settings, backwards: Backwards | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import_sdk()
    try:
        plugins = PluginSet.load(settings.plugins, settings.runtime_for)
    except (PluginLoadError, ValueError) as error:
        logger.error("%s", error)
        return 1
    try:
        _serve_loaded(settings, plugins, backwards)
    finally:
        plugins.close()
    return 0


def _serve_loaded(settings: Settings, plugins: PluginSet, backwards: Backwards | None) -> None:
    logger.info(
        "serving %d plugin(s) on http://%s:%d%s",
        len(plugins),
        settings.host,
        settings.port,
        " (strict)" if settings.strict else "",
    )
    uvicorn.run(
        create_app(settings, plugins, backwards=backwards),
        host=settings.host,
        port=settings.port,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _stop(signum: int, frame: FrameType | None) -> None:
    """End at once, with status 0: `docker stop` is how a container is meant to end.

    Python as a container's PID 1 ignores SIGTERM unless it has a handler. While uvicorn
    serves, its own handler shuts down gracefully and then raises the signal again, which
    lands here once the connections are closed.
    """
    raise SystemExit(0)


def contracts(args: argparse.Namespace) -> int:
    """`contracts export` writes the JSON Schemas; `contracts diff` judges a change."""
    if args.contracts_command == "export":
        try:
            written = write_contracts(args.out)
        except OSError as error:
            print(f"cannot write the contracts to {args.out}: {error}", file=sys.stderr)
            return 2
        print(f"wrote {len(written)} files to {args.out}")
        return 0
    try:
        changes = diff(args.old, args.new)
    except UnusableContract as error:
        print(f"unusable contract: {error}", file=sys.stderr)
        return 2
    print(json.dumps(as_json(changes), indent=2) if args.json else render(changes))
    return 1 if any(change.breaks for change in changes) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve Dify's dispatch routes from SDK plugins")
    serve.add_argument(
        "--plugin",
        action="append",
        metavar="PATH[::RUNTIME[=PYTHON]]",
        help="a plugin directory, a .difypkg file, or a folder of them (repeatable);"
        " a ::inprocess or ::subprocess suffix picks that plugin's runtime, and"
        " ::subprocess=PYTHON its interpreter (a python or a virtual environment);"
        " default: $EMULATOR_PLUGIN_DIRS or the bundled example plugin",
    )
    serve.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="how plugins without a ::RUNTIME suffix run: in the emulator's process, or each"
        " as its own process speaking the SDK's stdio protocol, as behind the daemon;"
        " default: $EMULATOR_RUNTIME or inprocess",
    )
    serve.add_argument(
        "--python",
        type=Path,
        metavar="PYTHON",
        help="the interpreter (or virtual environment) of subprocess plugins that name none;"
        " default: $EMULATOR_PYTHON or the emulator's own",
    )
    serve.add_argument("--host", help="default: $SERVER_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: $SERVER_PORT or 5002")
    serve.add_argument(
        "--key", help="the X-Api-Key to require; default: $SERVER_KEY or Dify's default"
    )
    serve.add_argument(
        "--strict",
        action="store_true",
        help="answer 400 wherever the daemon would silently coerce; default: $EMULATOR_STRICT",
    )
    serve.add_argument(
        "--journal-cap",
        type=int,
        metavar="N",
        help="dispatches the journal keeps; default: $EMULATOR_JOURNAL_CAP or 1000",
    )
    add_matrix_command(commands)
    contract = commands.add_parser("contracts", help="the contract as JSON Schema")
    contract_commands = contract.add_subparsers(dest="contracts_command", required=True)
    export = contract_commands.add_parser("export", help="write the JSON Schemas")
    export.add_argument("--out", type=Path, default=Path("contracts"), help="default: contracts/")
    compare = contract_commands.add_parser(
        "diff",
        help="which side a change breaks; exit 0 nothing breaks, 1 something does, 2 bad input",
    )
    compare.add_argument("old", type=Path, help="the old contract folder")
    compare.add_argument("new", type=Path, help="the new contract folder")
    compare.add_argument("--json", action="store_true", help="print the changes as JSON")
    return parser


if __name__ == "__main__":
    sys.exit(main())
