"""The chat's login page, when the API has a token (``KAZRAG_API_TOKEN``).

The chat's own routes (``/gradio_api/*``) can ask, upload and remove documents, so with a token
they want it too. Gradio's login page asks for a user name and a password in the browser's
locale (English for a Kazakh browser) and cannot say that the password is the API token; this
page asks for the token alone, says where it comes from, and speaks Kazakh, Russian or English
(``?lang=``, else the browser's preference). A correct token sets a cookie holding an HMAC of
the token (never the token itself; ``rag/session.py``), which Gradio checks on every chat route
through ``auth_dependency`` and the API's file route accepts in place of the bearer token.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rag.session import COOKIE, session_value, valid_session
from ui.texts import DEFAULT_LANGUAGE, LANGUAGES, TEXT, browser_language

__all__ = ["COOKIE", "LOGIN_PATH", "add_login", "chat_user", "session_value"]

LOGIN_PATH = "/login"


def chat_user(token: str) -> Callable[[Request], str | None]:
    """Gradio's ``auth_dependency``: the user of a request with a valid cookie, else ``None``.

    The cookie is checked by ``rag.session``, as the API's file route checks it.
    """

    def user(request: Request) -> str | None:
        return "token" if valid_session(request.cookies.get(COOKIE), token) else None

    return user


def page_language(request: Request) -> str:
    """``?lang=`` if it is one of kk/ru/en, else the browser's first of them, else Kazakh."""
    asked = request.query_params.get("lang", "")
    if asked in TEXT:
        return asked
    return browser_language(request.headers.get("accept-language")) or DEFAULT_LANGUAGE


_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kazrag · {title}</title>
<style>
body {{ font-family: ui-sans-serif, system-ui, "Noto Sans", "DejaVu Sans", sans-serif;
  background: #f9fafb; color: #111827; margin: 0; display: flex; min-height: 100vh;
  align-items: center; justify-content: center; }}
main {{ background: #fff; border: 1px solid #e5e7eb; border-radius: 12px; padding: 1.5rem;
  width: min(26rem, 92vw); box-sizing: border-box; }}
h1 {{ font-size: 1.3rem; margin: 0 0 .8rem; }}
label {{ display: block; font-weight: 600; margin-bottom: .3rem; }}
input {{ width: 100%; box-sizing: border-box; font: inherit; padding: .5rem .6rem;
  border: 1px solid #9ca3af; border-radius: 8px; background: inherit; color: inherit; }}
button {{ margin-top: .9rem; width: 100%; font: inherit; font-weight: 600; padding: .55rem;
  border: 0; border-radius: 8px; background: #4338ca; color: #fff; cursor: pointer; }}
p.hint {{ font-size: .9rem; color: #374151; }}
p.error {{ color: #b91c1c; font-weight: 600; }}
nav {{ margin-bottom: 1rem; font-size: .9rem; }}
nav a {{ color: #3730a3; margin-right: .8rem; }}
nav a[aria-current] {{ font-weight: 700; text-decoration: none; }}
@media (prefers-color-scheme: dark) {{
  body {{ background: #0b0f19; color: #f3f4f6; }}
  main {{ background: #1f2937; border-color: #374151; }}
  p.hint {{ color: #d1d5db; }} p.error {{ color: #fca5a5; }} nav a {{ color: #c7d2fe; }}
  button {{ background: #6366f1; }} }}
</style></head>
<body><main>
<nav>{languages}</nav>
<h1>kazrag · {title}</h1>
{error}
<form method="post" action="{action}">
<input type="hidden" name="lang" value="{lang}">
<label for="kz-token">{token_label}</label>
<input id="kz-token" name="password" type="password" autocomplete="current-password" required
  autofocus>
<p class="hint">{hint}</p>
<button type="submit">{button}</button>
</form>
</main></body></html>
"""


def login_page(lang: str, failed: bool = False) -> str:
    """The login form in ``lang``, with links to the other languages."""
    t = TEXT[lang]
    links = " ".join(
        f'<a href="{LOGIN_PATH}?lang={code}"{" aria-current=page" if code == lang else ""}>'
        f"{html.escape(label)}</a>"
        for label, code in LANGUAGES.items()
    )
    error = f'<p class="error" role="alert">{html.escape(t["login_failed"])}</p>' if failed else ""
    return _PAGE.format(
        lang=lang,
        title=html.escape(t["login_title"]),
        languages=links,
        error=error,
        action=LOGIN_PATH,
        token_label=html.escape(t["login_token"]),
        hint=html.escape(t["login_hint"]),
        button=html.escape(t["login_button"]),
    )


class _LoginFirst:
    """ASGI middleware: a page load of the chat without a valid cookie goes to the login page
    (Gradio would answer it with a bare 401)."""

    def __init__(self, app: Any, user: Callable[[Request], str | None]) -> None:
        self.app = app
        self.user = user

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/":
            request = Request(scope)
            if self.user(request) is None:
                query = request.url.query
                target = LOGIN_PATH + (f"?{query}" if "lang=" in query else "")
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_login(app: FastAPI, token: str) -> Callable[[Request], str | None]:
    """Add ``/login`` and ``/logout`` to ``app`` and send page loads there until logged in.

    Returns the ``auth_dependency`` for the chat. Call before mounting the chat at ``/`` (the
    first matching route wins).
    """
    user = chat_user(token)

    @app.get(LOGIN_PATH, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        return HTMLResponse(login_page(page_language(request)))

    @app.post(LOGIN_PATH, include_in_schema=False)
    def login(password: str = Form(""), lang: str = Form(DEFAULT_LANGUAGE)) -> Response:
        lang = lang if lang in TEXT else DEFAULT_LANGUAGE
        if not hmac.compare_digest(password.encode(), token.encode()):
            return HTMLResponse(login_page(lang, failed=True), status_code=400)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="lax")
        return response

    @app.get("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        response.delete_cookie(COOKIE)
        return response

    app.add_middleware(_LoginFirst, user=user)
    return user
