"""What the receiver's two HTML pages share: one layout, one stylesheet, escaping, and one set of
security headers.

Both pages show strings that come from payloads and Git (refs, messages, object names, log
lines), so every value is escaped, and the headers make sure that whatever slipped through
could neither run nor load anything, nor be cached or framed.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Final

from starlette.responses import HTMLResponse, PlainTextResponse

# No script may run, whatever a value slips through; styles are inline, nothing is fetched.
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

STYLE: Final = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#222}"
    "table{border-collapse:collapse;margin-bottom:2rem}"
    "td,th{padding:.3rem .9rem .3rem 0;text-align:left;vertical-align:top;"
    "border-bottom:1px solid #e4e4e4}th{font-weight:600}small{color:#666}"
    "pre{background:#f4f4f4;padding:.8rem;overflow-x:auto}code{font-size:13px}"
    ".success,.no-op,.succeeded{color:#17692c}.failure,.failed,.lease-held{color:#b3261e}"
    ".running,.waiting{color:#8a5a00}.suspended{color:#555;font-weight:600}"
    # The run page: diffs coloured by line, outcomes, and the log one readable line each.
    "pre.diff,pre.log{padding:.5rem 0;line-height:1.35}"
    "pre.diff span,pre.log>span{display:block;padding:0 .8rem;white-space:pre}"
    "pre.diff .add{background:#e6ffec;color:#116329}pre.diff .del{background:#ffebe9;color:#a0111f}"
    "pre.diff .hunk{color:#0550ae;background:#ddf4ff}pre.diff .file{color:#57606a;font-weight:600}"
    "pre.diff .cut{color:#8a5a00}pre.diff .ctx{color:#444}"
    "section.object{margin-bottom:1.2rem}section.object h4{margin:.6rem 0 .3rem}"
    ".would.create,.outcome.created{color:#17692c}.would.change,.outcome.configured{color:#8a5a00}"
    ".would.prune,.outcome.pruned,.outcome.drifted{color:#b3261e}.outcome.unchanged{color:#666}"
    "table.outcomes pre{margin:0}"
    "pre.log .time{color:#777}pre.log .step{color:#0550ae;font-weight:600}"
    "pre.log .field{color:#555}pre.log .field b{font-weight:400;color:#222}"
    "pre.log .error{background:#ffebe9}pre.log .warning{background:#fff8c5}pre.log .raw{color:#444}"
)


def e(value: object) -> str:
    """`value` as HTML text, safe inside an element and inside a quoted attribute."""
    return html.escape(str(value), quote=True)


def document(title: str, body: str, *, refresh_seconds: int | None = None) -> str:
    """A whole page: `title` is escaped here, `body` is HTML its caller has escaped."""
    refresh = f"<meta http-equiv='refresh' content='{refresh_seconds}'>" if refresh_seconds else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"{refresh}<title>{e(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def page_response(page: str) -> HTMLResponse:
    return HTMLResponse(page, headers=dict(SECURITY_HEADERS))


def text_response(
    text: str, status_code: int, headers: Mapping[str, str] | None = None
) -> PlainTextResponse:
    """A page's plain-text refusal (401, 403, 404, 503), with the same security headers."""
    return PlainTextResponse(
        text, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )
