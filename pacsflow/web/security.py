"""Authentication and permission checks for every HTTP interface of pacsflow.

One module decides who the caller is and what they may do, so the dashboard, the REST API
and DICOMweb cannot drift apart. Callers are identified by a FAB login session, HTTP Basic
(database users, and directory users with LDAP sign-in) or a Bearer JWT from
``POST /api/v1/security/login``; all three end up as flask-login's ``current_user``.
Permissions live on FAB's ``DICOM`` resource.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from enum import Enum, StrEnum
from typing import Any, ParamSpec

from cachetools import TTLCache
from flask import Flask, Request, current_app, g, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from flask_appbuilder.const import AUTH_LDAP
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_login import current_user
from jwt import PyJWTError
from werkzeug.datastructures import Authorization
from werkzeug.wrappers import Response

from pacsflow.web import tokens
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.hardening import count_failed_sign_in, sign_in_refused
from pacsflow.web.tokens import is_access_token

logger = logging.getLogger(__name__)

DICOM_RESOURCE = "DICOM"
REALM = "pacsflow"
CREDENTIAL_CACHE_TTL = 60.0
API_PATH_PREFIXES = ("/dicomweb", "/api")
_CACHE_EXTENSION = "pacsflow_credential_cache"
_PUBLIC_ENDPOINTS_EXTENSION = "pacsflow_public_endpoints"
_AUTHENTICATING = "_pacsflow_authenticating"
_PERMISSIONS_EXTENSION = "pacsflow_permission_cache"
VIA_ACCESS_TOKEN = "pacsflow_via_access_token"  # flag in flask.g
PERMISSION_CACHE_TTL = 10.0

P = ParamSpec("P")

__all__ = [
    "DICOM_RESOURCE",
    "ROLE_GRANTS",
    "CredentialCache",
    "Permission",
    "RoleName",
    "VIA_ACCESS_TOKEN",
    "credential_cache",
    "ensure_roles",
    "forbidden_response",
    "has_permission",
    "has_role",
    "init_security",
    "is_admin",
    "load_user_from_request",
    "require",
    "require_login",
    "security_manager",
    "unauthorized_response",
]


class Permission(Enum):
    """What a user may do with DICOM data; values are FAB permission names."""

    READ = "can_read"
    WRITE = "can_write"
    DELETE = "can_delete"


class RoleName(StrEnum):
    """The roles pacsflow creates at startup; values are FAB role names."""

    ADMIN = "Admin"
    OPERATOR = "Operator"
    RESEARCHER = "Researcher"
    VIEWER = "Viewer"


ROLE_GRANTS: Mapping[RoleName, frozenset[Permission]] = {
    RoleName.ADMIN: frozenset(Permission),
    RoleName.OPERATOR: frozenset({Permission.READ, Permission.WRITE}),
    # Researchers may delete where a project makes them its Manager (pacsflow.web.access).
    RoleName.RESEARCHER: frozenset(Permission),
    RoleName.VIEWER: frozenset({Permission.READ}),
}

# FAB (permission, view) pairs every role gets so that any signed-in user can read the
# OpenAPI spec and change their own password; Admin already has all FAB permissions.
SELF_SERVICE_GRANTS: tuple[tuple[str, str], ...] = (
    ("can_get", "OpenApi"),
    ("can_show", "SwaggerView"),
    ("can_userinfo", "UserDBModelView"),
    ("resetmypassword", "UserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
    ("can_this_form_get", "UserInfoEditView"),
    ("can_this_form_post", "UserInfoEditView"),
    ("userinfoedit", "UserDBModelView"),
    ("can_get", "MenuApi"),
)


def security_manager(app: Flask | None = None) -> Any:
    """FAB's security manager of ``app`` (default: the current app); FAB leaves it untyped."""
    return (app or current_app).extensions["appbuilder"].sm


def is_admin(user: Any) -> bool:
    """Admins see and manage everything (tokens of others, the audit trail)."""
    return has_role(user, RoleName.ADMIN)


def has_role(user: Any, role: RoleName) -> bool:
    return any(held.name == role.value for held in getattr(user, "roles", ()))


def has_permission(user: Any, permission: Permission) -> bool:
    """Tell whether ``user`` (a FAB user or flask-login proxy) holds ``permission`` on DICOM."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return permission.value in _dicom_permissions(user)


def _dicom_permissions(user: Any) -> frozenset[str]:
    """The user's DICOM permissions, remembered for a few seconds.

    Asking FAB costs several queries per request (roles, then permissions); role changes
    therefore apply within PERMISSION_CACHE_TTL. Deleted or deactivated users are refused
    at once all the same: their row is loaded on every request.
    """
    cache, lock = current_app.extensions[_PERMISSIONS_EXTENSION]
    with lock:
        cached: frozenset[str] | None = cache.get(user.id)
    if cached is not None:
        return cached
    sm = security_manager()
    role_ids = [role.id for role in sm.get_user_roles(user)]
    granted = frozenset(
        p.value
        for p in Permission
        if role_ids and sm.exist_permission_on_roles(DICOM_RESOURCE, p.value, role_ids)
    )
    with lock:
        cache[user.id] = granted
    return granted


def require(
    permission: Permission,
) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, ResponseReturnValue]]:
    """Guard a view: 401 without a user, 403 naming ``permission`` if the user lacks it."""

    def decorator(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            if not current_user.is_authenticated:
                return unauthorized_response()
            if not has_permission(current_user, permission):
                logger.warning(
                    "denied %s on %s to user %s for %s %s",
                    permission.value,
                    DICOM_RESOURCE,
                    current_user.username,
                    request.method,
                    request.path,
                )
                return forbidden_response(permission)
            return view(*args, **kwargs)

        wrapped.required_permission = permission  # type: ignore[attr-defined]
        return wrapped

    return decorator


def unauthorized_response(message: str = "authentication required") -> Response:
    """A 401 that tells API clients to retry with HTTP Basic or a Bearer token."""
    response = jsonify({"error": message})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return response


def forbidden_response(permission: Permission) -> Response:
    """A 403 naming the missing permission so the user knows what to ask an admin for."""
    response = jsonify(
        {
            "error": f"permission {permission.value} on {DICOM_RESOURCE} required",
            "permission": permission.value,
        }
    )
    response.status_code = 403
    return response


class CredentialCache:
    """Remembers recent successful Basic logins for a short time.

    Password hashes (scrypt) cost tens of milliseconds by design; API clients send the
    password on every request. Entries are keyed by an HMAC-SHA-256 of user and password
    under a per-process random key, so neither the password nor a plain hash of it is kept.
    """

    def __init__(self, ttl: float = CREDENTIAL_CACHE_TTL, max_entries: int = 4096) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, username: str, password: str) -> bytes:
        """Length-prefix the username so ("ab", "c") and ("a", "bc") differ."""
        message = f"{len(username)}:{username}{password}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, username: str, password: str) -> int | None:
        """The user id verified for these credentials within the TTL, else None."""
        digest = self._digest(username, password)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            user_id, expires = entry
            if expires <= time.monotonic():
                del self._entries[digest]
                return None
            return user_id

    def put(self, username: str, password: str, user_id: int) -> None:
        """Remember a verified login; old entries are dropped when the cache is full."""
        digest = self._digest(username, password)
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
            self._entries[digest] = (user_id, now + self._ttl)

    def clear(self) -> None:
        """Forget everything, e.g. after a user was deleted or changed password."""
        with self._lock:
            self._entries.clear()


def credential_cache(app: Flask) -> CredentialCache:
    """The app's Basic-auth cache (one per app, so tests with several apps stay apart)."""
    cache: CredentialCache | None = app.extensions.get(_CACHE_EXTENSION)
    if cache is None:
        cache = app.extensions[_CACHE_EXTENSION] = CredentialCache()
    return cache


def load_user_from_request(req: Request) -> Any | None:
    """flask-login request_loader: authenticate an ``Authorization`` header, if any.

    FAB's login bookkeeping emits signals that read ``current_user``, which calls this loader
    again before it has returned; the re-entrant call answers "nobody" instead of recursing.
    """
    auth = req.authorization
    if auth is None or g.get(_AUTHENTICATING):
        return None
    g.setdefault(_AUTHENTICATING, True)
    try:
        return _authenticate(auth)
    finally:
        g.pop(_AUTHENTICATING, None)


def _authenticate(auth: Authorization) -> Any | None:
    if auth.type == "basic":
        return _user_from_basic(auth.username or "", auth.password or "")
    if auth.type == "bearer" and auth.token:
        if is_access_token(auth.token):
            return _user_from_access_token(auth.token)
        return _user_from_jwt(auth.token)
    return None


def _user_from_access_token(token: str) -> Any | None:
    """A personal access token, checked at every request (no cache: revocation is at once)."""
    user_id = tokens.user_of(archive().engine, token)
    if user_id is None:
        logger.info("rejected an access token: unknown, revoked or expired")
        return None
    g.setdefault(VIA_ACCESS_TOKEN, True)
    return security_manager().load_user(user_id)  # None if the user was deactivated


def _user_from_basic(username: str, password: str) -> Any | None:
    """Check Basic credentials against the database (then LDAP, if used), through the cache.

    A cache hit was verified moments ago, not guessed, so only misses face the sign-in limit.
    """
    if not username or not password:
        return None
    sm = security_manager()
    cache = credential_cache(current_app)
    user_id = cache.get(username, password)
    if user_id is not None:
        user = sm.load_user(user_id)  # None if deleted or deactivated meanwhile
        if user is not None:
            return user
    if sign_in_refused(username):
        return None
    user = sm.auth_user_db(username, password)
    if user is None and sm.auth_type == AUTH_LDAP:  # local accounts (Airflow's) matched above
        user = sm.auth_user_ldap(username, password)
    if user is None:
        count_failed_sign_in(username)
        return None
    cache.put(username, password, user.id)
    return user


def _user_from_jwt(token: str) -> Any | None:
    """Accept only valid, unexpired access tokens (not refresh tokens)."""
    try:
        claims = decode_token(token)
    except (PyJWTError, JWTExtendedException) as exc:
        logger.info("rejected bearer token: %s", type(exc).__name__)
        return None
    if claims.get("type") != "access":
        return None
    identity = claims.get(current_app.config.get("JWT_IDENTITY_CLAIM", "sub"))
    if identity is None:
        return None
    try:
        user_id = int(identity)
    except (TypeError, ValueError):
        return None
    return security_manager().load_user(user_id)


def public_endpoints(app: Flask) -> frozenset[str]:
    """Endpoints reachable without a user: health, login, token refresh, static assets."""
    sm = security_manager(app)
    api = sm.security_api.__name__
    endpoints = {"health", "static", f"{api}.login", f"{api}.refresh"}  # refresh checks its token
    if sm.auth_view is not None:
        view = sm.auth_view.endpoint
        # login also serves OAuth's /login/<provider>; the provider sends users back to
        # oauth_authorized, which checks their code and state itself.
        endpoints.update({f"{view}.login", f"{view}.oauth_authorized"})
    return frozenset(endpoints)


def _is_public(app: Flask, endpoint: str | None) -> bool:
    """Static files of any blueprint are public; unknown URLs are not (no route probing)."""
    if endpoint is None:
        return False
    if endpoint.endswith(".static"):
        return True
    return endpoint in app.extensions[_PUBLIC_ENDPOINTS_EXTENSION]


def _wants_api_response() -> bool:
    """API paths and any client that sent credentials get 401, browsers get the login page."""
    return request.path.startswith(API_PATH_PREFIXES) or "Authorization" in request.headers


def require_login() -> ResponseReturnValue | None:
    """Global before_request guard: nothing but the public endpoints without a user."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if _is_public(app, request.endpoint) or current_user.is_authenticated:
        return None
    if _wants_api_response():
        return unauthorized_response()
    next_url = request.full_path if request.query_string else request.path
    return redirect(app.extensions["appbuilder"].get_url_for_login_with(next_url))


def init_security(app: Flask) -> None:
    """Hook request authentication and the login guard into an app FAB has initialised."""
    sm = security_manager(app)
    sm.lm.request_loader(load_user_from_request)
    app.extensions[_PUBLIC_ENDPOINTS_EXTENSION] = public_endpoints(app)
    credential_cache(app)
    permissions: TTLCache[int, frozenset[str]] = TTLCache(4096, PERMISSION_CACHE_TTL)
    app.extensions[_PERMISSIONS_EXTENSION] = (permissions, threading.Lock())
    app.before_request(require_login)


def ensure_roles(sm: Any) -> None:
    """Create the pacsflow roles and their grants; safe to run at every start.

    FAB's add_* helpers return existing rows and swallow database errors, so after granting
    we read the grants back and fail loudly if one is missing rather than start half set up.
    """
    for role_name, permissions in ROLE_GRANTS.items():
        role = sm.add_role(role_name.value)
        if role is None:
            raise RuntimeError(f"could not create role {role_name.value}")
        pairs = [(p.value, DICOM_RESOURCE) for p in permissions]
        if role_name is not RoleName.ADMIN:
            pairs.extend(SELF_SERVICE_GRANTS)
        _grant(sm, role, pairs)


def _grant(sm: Any, role: Any, pairs: Iterable[tuple[str, str]]) -> None:
    """Attach each (permission, view) to ``role``, then verify the role holds them all."""
    pairs = list(pairs)
    for permission_name, view_name in pairs:
        permission_view = sm.add_permission_view_menu(permission_name, view_name)
        sm.add_permission_role(role, permission_view)
    held = {(pv.permission.name, pv.view_menu.name) for pv in role.permissions}
    missing = sorted(set(pairs) - held)
    if missing:
        raise RuntimeError(f"role {role.name} is missing permissions {missing}")
