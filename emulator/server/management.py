"""The daemon's management routes Dify calls (lists of providers, tools, plugins, ...)."""

from __future__ import annotations

from fastapi import FastAPI


def add_routes(app: FastAPI) -> None:
    """Mount the management routes on `app`; they read `app.state.plugins`."""
