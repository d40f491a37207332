"""The /static mount: page scripts, styles and the vendored libraries (`make vendor`; never a CDN).

Public: these files hold no data. Everything a page loads comes from here, so the pages' CSP can say
`script-src 'self'`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
