"""Security headers for the pages and assets Genesis serves to browsers (pure ASGI).

The pages carry no inline script or style and load nothing from another origin, so the policy can be strict:
scripts, styles, images and API calls from this origin only. The API itself is called with bearer tokens held in
the page's memory (no cookies), so cross-site requests carry no credentials: CSRF-safe by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# ReDoc 2 styles itself with styled-components, which creates empty <style> elements and fills them through the
# CSSOM (insertRule, which CSP does not govern), and injects one fixed stylesheet (perfect-scrollbar's). Only those
# two exact contents are allowed, by hash: an injected <style> with anything else in it is still refused. Its
# search index is built in a worker that it starts from a blob: URL of its own code.
EMPTY_STYLE_SHA256 = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
PERFECT_SCROLLBAR_STYLE_SHA256 = "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"
REDOC_CSP = STRICT_CSP.replace(
    "style-src 'self'", f"style-src 'self' {EMPTY_STYLE_SHA256} {PERFECT_SCROLLBAR_STYLE_SHA256}"
) + "; worker-src blob:"

COMMON = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


def _policy(csp: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"content-security-policy", csp.encode()), *COMMON)


# (path prefix, headers): the first matching prefix wins.
BROWSER_PATHS: Sequence[tuple[str, tuple[tuple[bytes, bytes], ...]]] = (
    ("/redoc", _policy(REDOC_CSP)),
    ("/docs", _policy(STRICT_CSP)),
    ("/console", _policy(STRICT_CSP)),
    ("/static/", _policy(STRICT_CSP)),
)


class SecurityHeadersMiddleware:
    """Adds CSP, ``nosniff`` and ``Referrer-Policy`` to responses under the browser paths."""

    def __init__(self, app: ASGIApp, paths: Sequence[tuple[str, tuple[tuple[bytes, bytes], ...]]] = BROWSER_PATHS):
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = next((headers for prefix, headers in self.paths if path.startswith(prefix)), None)
        if extra is None:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in extra}
                # Ours replace any the route set, so one policy holds per path whatever the route does.
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
