"""The static assets shipped in the package: vendored libraries (see ``static/vendor/manifest.json``) and our own."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
MOUNT_PATH = "/static"

# The system's MIME table may not know .mjs, and browsers refuse an ES module served as anything but JavaScript.
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
               ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json", ".txt": "text/plain"}
# Vendored files live under a versioned directory and never change in place; our own files change with Genesis.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@cache
def manifest() -> dict[str, Any]:
    """The vendored packages: version, licence, tarball and file checksums (written by ``make vendor``)."""
    data: dict[str, Any] = json.loads((STATIC_DIR / "vendor" / "manifest.json").read_text(encoding="utf-8"))
    return data


def vendor_file(package: str, name: str) -> str:
    """The path (under the static mount) of a vendored file, e.g. ``vendor/redoc-2.5.4/redoc.standalone.js``.

    Raises:
        KeyError: the package or the file is not vendored.
    """
    entry = manifest()[package]
    if name not in entry["files"]:
        raise KeyError(f"{package} ships no {name}")
    return f"vendor/{package}-{entry['version']}/{name}"


class StaticAssets(StaticFiles):
    """StaticFiles with explicit media types and cache rules (long for versioned vendor files)."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if isinstance(response, FileResponse):
            media_type = MEDIA_TYPES.get(Path(full_path).suffix)
            if media_type:
                charset = "; charset=utf-8" if media_type.startswith(("text/", "application/json")) else ""
                response.headers["content-type"] = media_type + charset
        vendored = scope["path"].startswith(f"{MOUNT_PATH}/vendor/") or scope["path"].startswith("/vendor/")
        response.headers["cache-control"] = IMMUTABLE if vendored else REVALIDATE
        return response
