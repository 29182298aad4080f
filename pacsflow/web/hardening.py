"""Hardening of sign-in and responses: failed sign-ins are rate limited, every response
carries security headers, and login sessions expire.

Failed sign-ins are counted per username and per client address in a moving window (the
``limits`` library). Once a count is full, every sign-in for that username or address is
refused with 429 before the password is checked, so guessing slows to a few tries a minute,
while users who type their password right are never held up: successes are not counted.
Counts live in each web worker's memory unless PACSFLOW_LOGIN_LIMIT_STORAGE names a shared
store, so with N gunicorn workers a guesser gets up to N times the limit.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from math import ceil
from typing import Any, Final

from flask import Flask, current_app, g, jsonify, request, session
from flask_login import current_user, user_logged_in
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from pacsflow.settings import ENV_PREFIX, Settings, SettingsError
from pacsflow.web.viewer import URL_PREFIX as VIEWER_PREFIX
from pacsflow.workflows.airflow_env import SERVICE_USER

__all__ = [
    "FAILURES_PER_ADDRESS",
    "FAILURES_PER_USER",
    "FAILURE_WINDOW_SECONDS",
    "LoginThrottle",
    "count_failed_sign_in",
    "hardening_config",
    "init_hardening",
    "login_throttle",
    "sign_in_refused",
]

logger = logging.getLogger(__name__)

FAILURES_PER_USER: Final = 5
FAILURES_PER_ADDRESS: Final = 20  # above one user's: a lab behind one NAT address shares it
FAILURE_WINDOW_SECONDS: Final = 60
HSTS_MAX_AGE: Final = 365 * 24 * 3600
_THROTTLE_EXTENSION: Final = "pacsflow_login_throttle"
_ENDPOINTS_EXTENSION: Final = "pacsflow_sign_in_endpoints"
_REFUSED: Final = "pacsflow_sign_in_refused"  # flask.g: seconds to wait, for HTTP Basic
_NONCE: Final = "pacsflow_csp_nonce"  # flask.g

BASE_HEADERS: Final[dict[str, str]] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}


class LoginThrottle:
    """Failed sign-ins per username and per client address within a moving window."""

    def __init__(
        self,
        storage: Storage,
        per_user: int = FAILURES_PER_USER,
        per_address: int = FAILURES_PER_ADDRESS,
        window_seconds: int = FAILURE_WINDOW_SECONDS,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_user = RateLimitItemPerSecond(per_user, window_seconds)
        self._per_address = RateLimitItemPerSecond(per_address, window_seconds)

    def _counters(self, username: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        """FAB finds users case-insensitively, so "Admin" and "admin" share one count.

        The workflows' service account is never locked by name: anyone could otherwise stop
        every workflow with a few wrong passwords, and its generated secret is not guessable.
        """
        counters: list[tuple[RateLimitItem, str, str]] = [(self._per_address, "address", address)]
        if username and username.lower() != SERVICE_USER:
            counters.append((self._per_user, "user", username.lower()))
        return counters

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until sign-ins for this username and address are accepted again; 0: now."""
        waits = [
            self._limiter.get_window_stats(item, kind, key).reset_time - time.time()
            for item, kind, key in self._counters(username, address)
            if not self._limiter.test(item, kind, key)
        ]
        return max(1, ceil(max(waits))) if waits else 0

    def count_failure(self, username: str, address: str) -> None:
        """Count one failed sign-in; warn once a count fills (later tries are refused)."""
        for item, kind, key in self._counters(username, address):
            self._limiter.hit(item, kind, key)
            if not self._limiter.test(item, kind, key):
                logger.warning(
                    "%s %s reached %d failed sign-ins in %d s: its sign-ins are refused for now",
                    kind,
                    key,
                    item.amount,
                    item.get_expiry(),
                )


@dataclass(frozen=True)
class _SignInEndpoints:
    form: str  # FAB's login page, POST /login/
    api: str  # FAB's JWT login, POST /api/v1/security/login


def hardening_config(settings: Settings) -> dict[str, Any]:
    """Flask config for session expiry and cookies; Secure only where browsers use https."""
    lifetime = timedelta(hours=settings.session_hours)
    https = _is_https(settings)
    return {
        "PERMANENT_SESSION_LIFETIME": lifetime,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SECURE": https,
        # FAB signs in with remember=False, so flask-login never sets its remember cookie;
        # should anything set one, it must not outlive the session nor travel in clear text.
        "REMEMBER_COOKIE_DURATION": lifetime,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": https,
    }


def init_hardening(app: Flask) -> None:
    """Hook sign-in limits, security headers and permanent sessions into an initialised app."""
    settings: Settings = app.config["PACSFLOW_SETTINGS"]
    app.extensions[_THROTTLE_EXTENSION] = LoginThrottle(_limit_storage(settings))
    app.extensions[_ENDPOINTS_EXTENSION] = _sign_in_endpoints(app)
    app.jinja_env.globals["csp_nonce"] = csp_nonce  # FAB's templates put it on their scripts
    user_logged_in.connect(_make_session_permanent, app)
    app.before_request(_refuse_throttled_sign_in)
    app.after_request(_finish_response)


def login_throttle(app: Flask) -> LoginThrottle:
    throttle: LoginThrottle = app.extensions[_THROTTLE_EXTENSION]
    return throttle


def sign_in_refused(username: str) -> bool:
    """For sign-ins outside FAB's views (HTTP Basic): whether to refuse them unchecked.

    The caller answers as for wrong credentials; the response then becomes a 429.
    """
    wait = login_throttle(current_app).retry_after(username, _address())
    if wait:
        g.setdefault(_REFUSED, wait)
    return wait > 0


def count_failed_sign_in(username: str) -> None:
    login_throttle(current_app).count_failure(username, _address())


def csp_nonce() -> str:
    """One nonce per response, for the inline scripts its page carries."""
    nonce: str = g.setdefault(_NONCE, secrets.token_urlsafe(16))
    return nonce


def _limit_storage(settings: Settings) -> Storage:
    """The store named by the setting; errors do not repeat its URI, which may hold a password."""
    variable = f"{ENV_PREFIX}LOGIN_LIMIT_STORAGE"
    hint = "use memory:// or redis://HOST:PORT/DB"
    try:
        storage = storage_from_string(settings.login_limit_storage)
    except ConfigurationError:
        scheme = settings.login_limit_storage.partition("://")[0]
        raise SettingsError(
            f"{variable}: no store for the scheme {scheme!r} (unknown, or its client library is "
            f"not installed); {hint}"
        ) from None
    if not isinstance(storage, Storage) or not isinstance(storage, MovingWindowSupport):
        raise SettingsError(f"{variable}: not a synchronous store with moving windows; {hint}")
    return storage


def _sign_in_endpoints(app: Flask) -> _SignInEndpoints:
    """FAB's endpoint names, checked, so that a renamed view fails the start, not the limit."""
    sm = app.extensions["appbuilder"].sm
    form = f"{sm.auth_view.endpoint}.login" if sm.auth_view is not None else ""
    endpoints = _SignInEndpoints(form=form, api=f"{sm.security_api.__name__}.login")
    for endpoint in (endpoints.form, endpoints.api):
        if endpoint and endpoint not in app.view_functions:
            raise RuntimeError(f"sign-in endpoint {endpoint!r} not found: FAB changed its views")
    return endpoints


def _make_session_permanent(sender: Flask, **extra: Any) -> None:
    """A permanent session's cookie carries an expiry, PERMANENT_SESSION_LIFETIME ahead."""
    session.permanent = True


def _address() -> str:
    return request.remote_addr or ""


def _is_https(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def _submitted_username(endpoints: _SignInEndpoints) -> str:
    if request.endpoint == endpoints.form:
        return request.form.get("username", "")
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    return username if isinstance(username, str) else ""


def _refuse_throttled_sign_in() -> Response | None:
    """Before FAB's login views: refuse a throttled username or address unchecked."""
    endpoints: _SignInEndpoints = current_app.extensions[_ENDPOINTS_EXTENSION]
    if request.method != "POST" or request.endpoint not in (endpoints.form, endpoints.api):
        return None
    throttle = login_throttle(current_app)
    wait = throttle.retry_after(_submitted_username(endpoints), _address())
    if not wait:
        return None
    return _refused_response(wait, page=request.endpoint == endpoints.form)


def _finish_response(response: Response) -> Response:
    """Count a failed FAB sign-in, turn a refused Basic sign-in into 429, add the headers."""
    _count_failed_fab_sign_in(response)
    wait = g.pop(_REFUSED, 0)
    if wait:
        response = _refused_response(wait, page=False)
    _add_security_headers(response)
    return response


def _count_failed_fab_sign_in(response: Response) -> None:
    """FAB answers a wrong password with 401 (API) or a redirect without a login (form);
    invalid forms and payloads were never checked against a password and do not count."""
    endpoints: _SignInEndpoints = current_app.extensions[_ENDPOINTS_EXTENSION]
    if request.method != "POST":
        return
    failed = (request.endpoint == endpoints.api and response.status_code == 401) or (
        request.endpoint == endpoints.form
        and response.status_code in (302, 303)
        and not current_user.is_authenticated  # loaded by the view already: no second check
    )
    if failed:
        count_failed_sign_in(_submitted_username(endpoints))


def _refused_response(wait: int, page: bool) -> Response:
    message = f"too many failed sign-ins; try again in {wait} s"
    if page:
        return TooManyRequests(message, retry_after=wait).get_response()
    response = jsonify({"error": message})
    response.status_code = 429
    response.headers["Retry-After"] = str(wait)
    return response


def _add_security_headers(response: Response) -> None:
    """The OHIF viewer gets no CSP: it needs eval, wasm and blob: workers."""
    for name, value in BASE_HEADERS.items():
        response.headers.setdefault(name, value)
    settings: Settings = current_app.config["PACSFLOW_SETTINGS"]
    if _is_https(settings):
        response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}")
    path = request.path
    if path != VIEWER_PREFIX and not path.startswith(f"{VIEWER_PREFIX}/"):
        response.headers.setdefault("Content-Security-Policy", _content_security_policy())


def _content_security_policy() -> str:
    """Only this origin; inline scripts only with this response's nonce. Inline styles stay
    allowed: FAB's and the dashboard's markup use style attributes, which nonces cannot cover."""
    nonce = g.get(_NONCE)
    scripts = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",  # FAB's theme and Swagger UI inline small icons
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        )
    )
