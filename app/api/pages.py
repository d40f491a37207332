"""The HTML pages (dashboard, sign-in, API docs), each assembled once per process.

Every page shares one document shell, app/pages/shell.html (doctype, language, charset, viewport, no
favicon request); its own file in app/pages/ holds the rest of its <head> (title, stylesheets, deferred
scripts) and its <body>. The result is served as fixed bytes: no template work per request and no
inline script, so the pages keep their strict CSP (app/security/page_headers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from string import Template

from fastapi.responses import Response

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
PAGE_NAMES = ("dashboard", "sign-in", "docs")
HTML = "text/html; charset=utf-8"


@cache
def page_html(name: str) -> bytes:
    if name not in PAGE_NAMES:
        raise LookupError(f"no page {name!r}: the pages are {', '.join(PAGE_NAMES)}")
    shell = Template((PAGES_DIR / "shell.html").read_text(encoding="utf-8"))
    return shell.substitute(page=(PAGES_DIR / f"{name}.html").read_text(encoding="utf-8").rstrip("\n")).encode()


def page_response(name: str, *, headers: Mapping[str, str]) -> Response:
    return Response(page_html(name), media_type=HTML, headers=dict(headers))
