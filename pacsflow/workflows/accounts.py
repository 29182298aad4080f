"""pacsflow accounts as Airflow sees them: who signs in, and with which Airflow role.

Airflow keeps no users: its auth manager (:mod:`pacsflow.workflows.auth_manager`) asks
pacsflow's web API who a username and password belong to (``GET /api/v1/me`` with HTTP
Basic) and maps the pacsflow roles onto SimpleAuthManager's role ladder. Kept free of
Airflow imports so it is tested without Airflow.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import requests

from pacsflow.web.security import RoleName

ME_PATH = "/api/v1/me"
TIMEOUT = (5.0, 15.0)

# pacsflow role -> Airflow role (a SimpleAuthManagerRole name), strongest first: VIEWER reads
# everything, USER also runs DAGs, OP also manages connections, pools and variables, ADMIN
# may do anything. Researchers run workflows from the dashboard, not from Airflow's UI.
AIRFLOW_ROLES: tuple[tuple[RoleName, str], ...] = (
    (RoleName.ADMIN, "ADMIN"),
    (RoleName.OPERATOR, "OP"),
    (RoleName.RESEARCHER, "VIEWER"),
    (RoleName.VIEWER, "VIEWER"),
)


class SignInError(Exception):
    """A refused sign-in; ``status`` is the HTTP status to answer, the message says why."""

    status: ClassVar[int] = 400


class WrongPassword(SignInError):
    status = 401


class NoAirflowRole(SignInError):
    status = 403


class PacsflowUnavailable(SignInError):
    status = 503


@dataclass(frozen=True)
class Account:
    """A pacsflow user as ``GET /api/v1/me`` describes them."""

    username: str
    roles: tuple[str, ...]


def airflow_role(roles: Iterable[str]) -> str | None:
    """The strongest Airflow role that the pacsflow roles grant; None if none grants any."""
    held = set(roles)
    return next((airflow for pacsflow, airflow in AIRFLOW_ROLES if pacsflow in held), None)


def basic_authorization(username: str, password: str) -> str:
    """HTTP Basic in UTF-8, as pacsflow decodes it (requests would send Latin-1)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def fetch_account(web_url: str, username: str, password: str) -> Account:
    """Ask pacsflow who these credentials belong to."""
    url = f"{web_url}{ME_PATH}"
    headers = {"Authorization": basic_authorization(username, password)}
    try:
        response = requests.get(url, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise PacsflowUnavailable(
            f"cannot check the account: pacsflow's web app at {web_url} is unreachable "
            f"({type(exc).__name__}); start it (`pacsflow up` or `pacsflow web`) and try again"
        ) from exc
    if response.status_code == 401:
        raise WrongPassword("wrong username or password; use your pacsflow account")
    try:
        body = response.json() if response.status_code == 200 else {}
        return Account(str(body["username"]), tuple(str(role) for role in body["roles"]))
    except (ValueError, KeyError, TypeError):
        raise PacsflowUnavailable(
            f"cannot check the account: {url} answered {response.status_code}; "
            "see pacsflow's web log"
        ) from None


def check_sign_in(web_url: str, username: str, password: str) -> tuple[str, str]:
    """The pacsflow username and Airflow role for these credentials, or SignInError."""
    if not username or not password:
        raise SignInError("enter your pacsflow username and password")
    account = fetch_account(web_url, username, password)
    role = airflow_role(account.roles)
    if role is None:
        raise NoAirflowRole(
            f"pacsflow user {account.username!r} has no role that may use Airflow; "
            "ask a pacsflow admin for Viewer, Researcher, Operator or Admin"
        )
    return account.username, role
