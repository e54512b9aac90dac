"""`python -m emulator serve`: load every plugin, then open the port."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from emulator.config import Settings, SettingsError
from emulator.runtime import PluginLoadError, import_sdk
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app

logger = logging.getLogger("emulator")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
        )
    except SettingsError as error:
        parser.error(str(error))
    return serve(settings)


def serve(settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import_sdk()
    try:
        plugins = PluginSet.load(settings.plugins)
    except (PluginLoadError, ValueError) as error:
        logger.error("%s", error)
        return 1
    logger.info(
        "serving %d plugin(s) on http://%s:%d%s",
        len(plugins),
        settings.host,
        settings.port,
        " (strict)" if settings.strict else "",
    )
    uvicorn.run(
        create_app(settings, plugins),
        host=settings.host,
        port=settings.port,
        server_header=False,
        access_log=False,
        log_config=None,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve Dify's dispatch routes from SDK plugins")
    serve.add_argument(
        "--plugin",
        action="append",
        type=Path,
        metavar="DIR",
        help="a plugin directory (repeatable); default: the bundled example plugin",
    )
    serve.add_argument("--host", help="default: $SERVER_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: $SERVER_PORT or 5002")
    serve.add_argument(
        "--key", help="the X-Api-Key to require; default: $SERVER_KEY or Dify's default"
    )
    serve.add_argument(
        "--strict", action="store_true", help="answer 400 wherever the daemon would silently coerce"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
