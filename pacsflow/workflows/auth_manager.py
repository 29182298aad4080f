"""Airflow's auth manager for pacsflow: people sign in to Airflow with their pacsflow account.

There is one user store, pacsflow's (see :mod:`pacsflow.workflows.accounts`); Airflow keeps
no users and no passwords. At sign-in the API server checks the account with pacsflow and
signs its own JWT holding the Airflow role; permissions are then SimpleAuthManager's, which
this class inherits. A changed role or a removed user takes effect when that token expires
(``[api_auth] jwt_expiration_time``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow.api_fastapi.app import AUTH_MANAGER_FASTAPI_APP_PREFIX
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

from pacsflow.settings import load_settings
from pacsflow.workflows.accounts import SignInError, check_sign_in

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.middleware import _MiddlewareFactory

logger = logging.getLogger(__name__)


class PacsflowAuthManager(SimpleAuthManager):
    """SimpleAuthManager's roles and permissions, with pacsflow's users instead of its own.

    Its all-admins switch (``[core] simple_auth_manager_all_admins``) is ignored: it would
    let anyone in without a pacsflow account.
    """

    web_url = ""

    def init(self) -> None:
        BaseAuthManager.init(self)  # not SimpleAuthManager's, which writes a password file
        self.web_url = load_settings().web_url

    def sign_in(self, username: str, password: str) -> str:
        """An Airflow JWT for a pacsflow account; SignInError says why there is none."""
        try:
            name, role = check_sign_in(self.web_url, username, password)
        except SignInError as exc:
            logger.warning("Airflow sign-in refused for %s: %s", username, exc)
            raise
        logger.info("Airflow sign-in: %s as %s", name, role)
        return self.generate_jwt(SimpleAuthManagerUser(username=name, role=role))

    def get_url_login(self, **kwargs: Any) -> str:
        login_url = f"{AUTH_MANAGER_FASTAPI_APP_PREFIX}/login"
        next_url = kwargs.get("next_url")
        return f"{login_url}?{urlencode({'next': next_url})}" if next_url else login_url

    def get_fastapi_app(self) -> FastAPI | None:
        from pacsflow.workflows.auth_login import login_app

        return login_app(self.sign_in)

    def get_fastapi_middlewares(self) -> list[tuple[_MiddlewareFactory[Any], dict[str, Any]]]:
        return []

    def is_authorized_hitl_task(
        self, *, assigned_users: set[str], user: SimpleAuthManagerUser
    ) -> bool:
        return BaseAuthManager.is_authorized_hitl_task(
            self, assigned_users=assigned_users, user=user
        )
