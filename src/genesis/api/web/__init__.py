"""What Genesis serves to a browser: the offline API docs, the console, their assets and their security headers."""

from __future__ import annotations

from genesis.api.web.pages import install_web

__all__ = ["install_web"]
