"""The dashboard's browser session: a signed access token in an HttpOnly cookie, never in a URL.

The local sign-in form (client credentials, like POST /auth/token) gets a read-scoped token from the
TokenService and puts it in a cookie that scripts cannot read (HttpOnly), that the browser sends only to
this origin and never on cross-site requests (SameSite=Strict), and only over HTTPS when the page was
served over HTTPS (Secure). CSRF: the cookie only authorizes reads under /dashboard; the state-changing
form posts (sign-in, sign-out) must come from this origin (`Origin` / `Sec-Fetch-Site`).
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response

from app.errors import ApiError

COOKIE_NAME = "sensor_dashboard_session"
COOKIE_PATH = "/dashboard"
# Sec-Fetch-Site values of a form the user submitted on this origin (or typed/bookmarked: "none").
OWN_ORIGIN_FETCHES = {"same-origin", "none"}


def is_https(request: Request) -> bool:
    """HTTPS as the browser saw it (uvicorn's --proxy-headers applies X-Forwarded-Proto behind the ALB)."""
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(COOKIE_NAME, token, max_age=max_age, path=COOKIE_PATH, httponly=True,
                        secure=is_https(request), samesite="strict")


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, secure=is_https(request),
                           samesite="strict")


def session_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE_NAME) or None


def session_key(token: str) -> str:
    """A stable, non-secret id of one session (rate-limit bucket and stream count), not the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def require_same_origin(request: Request) -> None:
    """Refuse a form post that another site made the browser send (login CSRF, forced sign-out).

    Browsers say where a request comes from in `Sec-Fetch-Site`; older ones only in `Origin` (which is
    "null" under this site's `Referrer-Policy: no-referrer`, so "null" alone proves nothing either way).
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site not in OWN_ORIGIN_FETCHES:
            raise ApiError(403, "cross_origin", f"form posted from another site (Sec-Fetch-Site: {fetch_site})")
        return
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin not in (None, "null", own):
        raise ApiError(403, "cross_origin", f"form posted from {origin!r}; only {own!r} may post it")
