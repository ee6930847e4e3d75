"""Safe by default: the token on every request, a CSRF token on every form, loopback unless told.

The token may come as ``Authorization: Bearer TOKEN`` (scripts), or once as ``?token=TOKEN`` (a
link to send a colleague), which sets an HttpOnly, SameSite=Strict cookie and redirects to the
same page without it, so it does not stay in the address bar or the history.

CSRF: each browser gets a random value in a SameSite=Strict cookie; every form carries it in a
hidden field, and a POST whose field does not match the cookie is refused (the double-submit
pattern), as is one whose Origin is another site.
"""

from __future__ import annotations

import ipaddress
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import URL, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from styled.daemon.config import WebConfig
from styled.errors import ConfigError

TOKEN_COOKIE = "styled_token"
CSRF_COOKIE = "styled_csrf"
CSRF_FIELD = "csrf"
LOOPBACK_NAMES = ("localhost",)
#: On every answer: never sniff a type, never be framed, scripts and styles only from the page itself.
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "same-origin",
                    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def page_token(web: WebConfig) -> str | None:
    """The token from ``token`` or ``token_file``; a page that listens beyond this machine must have one.

    Raises ConfigError naming the key when the token file cannot be read or the host is exposed
    without a token.
    """
    token = web.token
    if web.token_file is not None:
        try:
            token = Path(web.token_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read the token file ({error})", key="web.token_file",
                              hint="write a long random string into it, e.g. python -c 'import secrets; "
                                   "print(secrets.token_urlsafe())' > FILE") from None
        if len(token) < 16:
            raise ConfigError("the token in the token file is shorter than 16 characters", key="web.token_file",
                              hint="use a long random string")
    if token is None and not is_loopback(web.host):
        raise ConfigError(f"web.host is {web.host!r}, reachable from other machines, but no token is set",
                          key="web.host", hint="set web.token_file (or web.token) so that only people with the "
                                                "token can use the page, or listen on 127.0.0.1")
    return token


class Guard:
    """ASGI middleware: checks the token (when there is one) and hands every browser a CSRF cookie."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh = csrf is None or len(csrf) < 20
        if fresh:
            csrf = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf"] = csrf

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
                if fresh:
                    headers.append("set-cookie", _cookie(CSRF_COOKIE, csrf))
            await send(message)

        refusal = self._check_token(request) if self.token is not None else None
        await (refusal or self.app)(scope, receive, send_with_headers)

    def _check_token(self, request: Request) -> ASGIApp | None:
        expected = self.token.encode()
        given = request.query_params.get("token")
        if given is not None and secrets.compare_digest(given.encode(), expected):
            query = [(key, value) for key, value in request.query_params.multi_items() if key != "token"]
            target = URL(path=request.url.path, query=urlencode(query))
            response = RedirectResponse(str(target), status_code=303)
            response.headers.append("set-cookie", _cookie(TOKEN_COOKIE, self.token))
            return response
        bearer = request.headers.get("authorization", "")
        for candidate in (bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else "",
                          request.cookies.get(TOKEN_COOKIE, "")):
            if candidate and secrets.compare_digest(candidate.encode(), expected):
                return None
        return PlainTextResponse("This page needs the studio's token: open it once as /?token=YOUR-TOKEN "
                                 "(the token is in the daemon's config, web.token or web.token_file).",
                                 status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _cookie(name: str, value: str) -> str:
    cookie = SimpleCookie()
    cookie[name] = value
    cookie[name]["path"] = "/"
    cookie[name]["httponly"] = True
    cookie[name]["samesite"] = "Strict"
    return cookie.output(header="").strip()


def csrf_problem(request: Request, submitted: str | None) -> str | None:
    """Why a form POST is refused, or None: the hidden field must match the cookie, and a browser's
    Origin (when it sends one) must be this page."""
    expected = request.state.csrf
    if not submitted or not secrets.compare_digest(submitted.encode(), expected.encode()):
        return "the form's security token is missing or stale; reload the page and send it again"
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        return "the form was sent from another site"
    return None
