"""The sign-in endpoints of pacsflow's Airflow auth manager, mounted by Airflow at ``/auth``.

``POST /auth/token`` serves Airflow's API clients, the dispatcher among them (JSON or form
``username``/``password``; 201 with ``access_token``, as SimpleAuthManager answers). ``/auth/login``
is a plain server-rendered form for browsers: it sets Airflow's JWT cookie and returns to the
page that asked for a sign-in. No scripts or external assets, so it works on a closed network.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Annotated

from airflow.api_fastapi.app import AUTH_MANAGER_FASTAPI_APP_PREFIX, get_cookie_path
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody, LoginResponse
from airflow.api_fastapi.auth.managers.simple.utils import parse_login_body
from airflow.api_fastapi.core_api.security import is_safe_url
from airflow.configuration import conf
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pacsflow.workflows.accounts import SignInError

SignIn = Callable[[str, str], str]  # (username, password) -> JWT, or SignInError
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to Airflow · pacsflow</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
label {{ display: block; margin-top: 1rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; margin-top: .25rem; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .6rem; }}
.error {{ color: #a4000f; }}
</style>
</head>
<body>
<main>
<h1>Sign in to Airflow</h1>
<p>Use your pacsflow account, the same as for the dashboard.</p>
{error}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label>Username
<input name="username" value="{username}" autocomplete="username" required autofocus></label>
<label>Password
<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""


def login_page(
    next_url: str = "", username: str = "", error: str = "", status_code: int = 200
) -> HTMLResponse:
    """The form, with the last error and the username kept when a sign-in was refused."""
    body = PAGE.format(
        action=html.escape(f"{AUTH_MANAGER_FASTAPI_APP_PREFIX}/login"),
        next=html.escape(next_url),
        username=html.escape(username),
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
    )
    return HTMLResponse(body, status_code=status_code, headers=PAGE_HEADERS)


def login_app(sign_in: SignIn) -> FastAPI:
    """The sub-application Airflow mounts at ``/auth``; ``sign_in`` checks the account."""
    app = FastAPI(
        title="pacsflow sign-in",
        description="Sign in to Airflow with a pacsflow account.",
    )

    @app.post("/token", status_code=status.HTTP_201_CREATED)
    def create_token(body: Annotated[LoginBody, Depends(parse_login_body)]) -> LoginResponse:
        try:
            return LoginResponse(access_token=sign_in(body.username, body.password))
        except SignInError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @app.get("/login", response_class=HTMLResponse)
    def show_login(next_url: Annotated[str, Query(alias="next")] = "") -> HTMLResponse:
        return login_page(next_url)

    @app.post("/login")
    def submit_login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        next_url: Annotated[str, Form(alias="next")] = "",
    ) -> Response:
        try:
            token = sign_in(username, password)
        except SignInError as exc:
            return login_page(next_url, username, str(exc), exc.status)
        return signed_in(request, token, next_url)

    return app


def signed_in(request: Request, token: str, next_url: str) -> RedirectResponse:
    """Back to where the user was (if it is Airflow's own page), holding the JWT cookie."""
    home = conf.get("api", "base_url", fallback="/")
    target = next_url if next_url and is_safe_url(next_url, request=request) else home
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    secure = request.base_url.scheme == "https" or bool(conf.get("api", "ssl_cert", fallback=""))
    response.set_cookie(
        COOKIE_NAME_JWT_TOKEN,
        token,
        path=get_cookie_path(),
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    return response
