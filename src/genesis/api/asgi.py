"""Entry point for ASGI servers: ``uvicorn --factory genesis.api.asgi:create_default_app``."""

from __future__ import annotations

from fastapi import FastAPI

from genesis.api.app import create_app
from genesis.config import get_settings


def create_default_app() -> FastAPI:
    """The app for the process settings; migrations were applied by ``genesis serve``."""
    return create_app(get_settings())
