"""The few server-rendered pages of sign-in and device approval: one frame, escaped by callers."""

from __future__ import annotations

import html
from urllib.parse import quote

from starlette.responses import HTMLResponse

_STYLE = (
    "body{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#222}code,input{font:1.2rem ui-monospace,monospace}"
    "button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem}"
)


def page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    """A small self-contained page; ``body`` is HTML the caller escaped."""
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} · Gatehouse</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        # The pages hold codes and forms: never cached, never framed.
        headers={
            "cache-control": "no-store",
            "x-frame-options": "DENY",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
        },
    )


def login_url(next_path: str) -> str:
    """Where to send a browser that must sign in first, to come back to ``next_path``."""
    return f"/auth/login?next={quote(next_path, safe='')}"
