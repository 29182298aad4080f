"""The pacsflow web application: Flask-AppBuilder for users, roles, login and the REST API.

``create_app`` runs in every gunicorn worker, and workers start together, so everything it
writes to the database happens under one cross-process lock and is idempotent.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, current_app, jsonify, request
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from sqlalchemy import Engine, text
from werkzeug.security import check_password_hash

from pacsflow.archive.archive import Archive
from pacsflow.settings import Settings, load_settings
from pacsflow.web.api import register_api
from pacsflow.web.audit import init_audit
from pacsflow.web.dashboard import SearchIndexView, register_dashboard
from pacsflow.web.dicomweb import register_dicomweb
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.hardening import hardening_config, init_hardening
from pacsflow.web.identity import PacsflowSecurityManager, identity_config
from pacsflow.web.security import RoleName, ensure_roles, init_security
from pacsflow.web.users import default_email, insert_user
from pacsflow.web.viewer import register_viewer
from pacsflow.workflows.airflow_env import SERVICE_USER, service_password

logger = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_FILE = "admin_password"
STARTUP_LOCK_FILE = "web-startup.lock"
# pg_advisory_lock key shared by all pacsflow web workers ("pacsflow" in ASCII, as an int).
STARTUP_LOCK_KEY = int.from_bytes(b"pacsflow", "big") >> 1


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app; creates tables, roles and the first admin on first start."""
    settings = settings or load_settings()
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__)
    app.config.from_mapping(flask_config(settings))
    db = SQLA()
    db.init_app(app)
    app.add_url_rule("/health", "health", health)
    with app.app_context(), startup_lock(settings, db.engine):
        appbuilder = AppBuilder(
            indexview=SearchIndexView, security_manager_class=PacsflowSecurityManager
        )
        appbuilder.init_app(app, db.session)
        ensure_roles(appbuilder.sm)
        ensure_admin(appbuilder.sm, settings)
        ensure_service_account(appbuilder.sm, settings)
        init_security(app)
        app.before_request(refuse_unknown_actions)  # after the login guard
        init_hardening(app)
        register_dicomweb(app)
        register_api(app)
        register_dashboard(app, appbuilder)
        init_audit(app)
        register_viewer(app)
    return app


def close_app(app: Flask) -> None:
    """Write what the audit trail still holds and release the archive (worker exit, tests)."""
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    archive.close()


def flask_config(settings: Settings) -> dict[str, Any]:
    """Flask and FAB settings derived from pacsflow's; nothing here is meant to be tuned."""
    secret_key = settings.flask_secret_key
    return {
        "PACSFLOW_SETTINGS": settings,  # for extensions such as DICOMweb
        "SECRET_KEY": secret_key,
        "JWT_SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": settings.sqlalchemy_url,
        # hide_parameters keeps row values (password hashes, later PHI) out of error logs.
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True, "pool_pre_ping": True},
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "APP_NAME": "pacsflow",
        "AUTH_ROLE_ADMIN": RoleName.ADMIN.value,
        "AUTH_ROLE_PUBLIC": "Public",
        "FAB_ADD_OPENAPI_VIEWS": True,
        "FAB_API_SWAGGER_UI": True,  # FAB only serves /api/v1/_openapi when this is on
        "FAB_ADD_SECURITY_API": False,
        "SESSION_COOKIE_NAME": "pacsflow_session",
        "SESSION_COOKIE_SAMESITE": "Lax",  # no cross-site POSTs riding on the login cookie
        **hardening_config(settings),
        **identity_config(settings),  # AUTH_TYPE and what it needs
    }


def refuse_unknown_actions() -> None:
    """Flask-AppBuilder answers 500 to a bulk action a view does not have: make it a 404."""
    endpoint = request.endpoint or ""
    if not endpoint.endswith((".action", ".action_post")):
        return
    owner = getattr(current_app.view_functions[endpoint], "__self__", None)
    name = (request.view_args or {}).get("name") or request.form.get("action")
    if name not in getattr(owner, "actions", {}):
        abort(404)


def health() -> Response:
    """Liveness probe for scripts and supervisors; needs no login."""
    return jsonify({"status": "ok"})


@contextmanager
def startup_lock(settings: Settings, engine: Engine) -> Iterator[None]:
    """Serialise startup of concurrent workers so FAB's table and permission setup never races.

    PostgreSQL may be shared by workers on several hosts, so it gets an advisory lock; SQLite
    only works on one host, where a file lock in $PACSFLOW_HOME suffices.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY})
        return
    with open(settings.resolved_home / STARTUP_LOCK_FILE, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def ensure_admin(sm: Any, settings: Settings) -> None:
    """On first start (no users at all) create ``admin``; later starts leave users alone."""
    if sm.count_users() > 0:
        return
    configured = settings.admin_password.get_secret_value() if settings.admin_password else ""
    generated = not configured.strip()  # PACSFLOW_ADMIN_PASSWORD= (empty) means "generate one"
    password = secrets.token_urlsafe(16) if generated else configured
    role = sm.find_role(RoleName.ADMIN.value)
    user = insert_user(sm, ADMIN_USERNAME, password, role, default_email(ADMIN_USERNAME))
    if user is None:
        return  # another worker created it first
    if not generated:
        logger.info("created user %s with PACSFLOW_ADMIN_PASSWORD", ADMIN_USERNAME)
        return
    path = store_admin_password(settings.resolved_home, password)
    print(
        f"pacsflow: created user {ADMIN_USERNAME} with password {password} (also stored in {path})",
        flush=True,
    )


def ensure_service_account(sm: Any, settings: Settings) -> None:
    """The account Airflow's tasks use to reach DICOMweb, with the password Airflow is given.

    Operator role: tasks read series and store results, never delete or administer.
    """
    password = service_password(settings)
    user = sm.find_user(username=SERVICE_USER)
    if user is None:
        role = sm.find_role(RoleName.OPERATOR.value)
        insert_user(sm, SERVICE_USER, password, role, default_email(SERVICE_USER))
    elif not check_password_hash(user.password, password):
        sm.reset_password(user.id, password)


def store_admin_password(home: Path, password: str) -> Path:
    """Write the generated password readable by the owner only, replacing any stale copy."""
    path = home / ADMIN_PASSWORD_FILE
    fd, tmp_name = tempfile.mkstemp(dir=home, prefix=f".{ADMIN_PASSWORD_FILE}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
