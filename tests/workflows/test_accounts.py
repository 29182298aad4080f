"""Which pacsflow accounts may use Airflow, and as what; checked against a real pacsflow web
server (no Airflow needed: the auth manager only adds Airflow's JWT on top)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pacsflow.settings import Settings, load_settings
from pacsflow.web.app import create_app
from pacsflow.web.security import RoleName, security_manager
from pacsflow.web.users import create_user
from pacsflow.workflows.accounts import (
    NoAirflowRole,
    PacsflowUnavailable,
    SignInError,
    WrongPassword,
    airflow_role,
    check_sign_in,
)
from tests.live_server import ADMIN_PASSWORD, LiveServer, free_port, running_server


@pytest.mark.parametrize(
    ("pacsflow_role", "expected"),
    [
        (RoleName.ADMIN, "ADMIN"),
        (RoleName.OPERATOR, "OP"),
        (RoleName.RESEARCHER, "VIEWER"),
        (RoleName.VIEWER, "VIEWER"),
    ],
)
def test_each_pacsflow_role_has_an_airflow_role(pacsflow_role: RoleName, expected: str) -> None:
    assert airflow_role([pacsflow_role.value]) == expected


def test_a_user_with_several_roles_gets_the_strongest() -> None:
    assert airflow_role(["Viewer", "Operator"]) == "OP"
    assert airflow_role(["Researcher", "Admin", "Viewer"]) == "ADMIN"


def test_no_role_or_only_unknown_roles_give_no_airflow_role() -> None:
    assert airflow_role([]) is None
    assert airflow_role(["Public", "operator"]) is None  # FAB role names are exact


@pytest.fixture(scope="module")
def pacsflow_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """pacsflow's web server with an Operator, a user with a non-ASCII password, and a user
    whose roles were all taken away."""
    root = tmp_path_factory.mktemp("accounts")
    settings = load_settings(home=root, admin_password=ADMIN_PASSWORD, http_port=free_port())
    add_people(settings)
    with running_server(settings, root / "web.log", port=settings.http_port) as server:
        yield server


def add_people(settings: Settings) -> None:
    app = create_app(settings)
    create_user(app, "olga", "operator-pw", "Operator")
    create_user(app, "jürgen", "pässwörd-ü", "Viewer")
    create_user(app, "nora", "no-role-pw", "Viewer")
    with app.app_context():
        sm = security_manager(app)
        user = sm.find_user(username="nora")
        user.roles = []
        sm.update_user(user)


def test_a_pacsflow_account_signs_in_with_its_airflow_role(pacsflow_web: LiveServer) -> None:
    assert check_sign_in(pacsflow_web.url, "olga", "operator-pw") == ("olga", "OP")
    assert check_sign_in(pacsflow_web.url, "admin", ADMIN_PASSWORD) == ("admin", "ADMIN")


def test_non_ascii_credentials_are_sent_as_pacsflow_reads_them(pacsflow_web: LiveServer) -> None:
    assert check_sign_in(pacsflow_web.url, "jürgen", "pässwörd-ü") == ("jürgen", "VIEWER")


@pytest.mark.parametrize(
    ("username", "password"), [("olga", "wrong-pw"), ("nobody", "operator-pw")]
)
def test_a_wrong_password_or_unknown_user_is_refused_alike(
    pacsflow_web: LiveServer, username: str, password: str
) -> None:
    with pytest.raises(WrongPassword, match="wrong username or password") as refused:
        check_sign_in(pacsflow_web.url, username, password)
    assert refused.value.status == 401


def test_a_user_without_role_is_told_whom_to_ask(pacsflow_web: LiveServer) -> None:
    with pytest.raises(NoAirflowRole, match="'nora' has no role .* ask a pacsflow admin") as no:
        check_sign_in(pacsflow_web.url, "nora", "no-role-pw")
    assert no.value.status == 403


@pytest.mark.parametrize(("username", "password"), [("", "pw"), ("olga", "")])
def test_empty_credentials_are_refused_without_asking_pacsflow(
    username: str, password: str
) -> None:
    with pytest.raises(SignInError, match="enter your pacsflow username and password") as empty:
        check_sign_in("http://127.0.0.1:9", username, password)
    assert empty.value.status == 400


def test_an_unreachable_pacsflow_says_what_to_start() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PacsflowUnavailable, match=r"unreachable.*`pacsflow up`") as down:
        check_sign_in(url, "olga", "operator-pw")
    assert down.value.status == 503


def test_a_server_that_is_not_pacsflow_is_named(pacsflow_web: LiveServer) -> None:
    elsewhere = f"{pacsflow_web.url}/not-pacsflow"
    with pytest.raises(PacsflowUnavailable, match="/not-pacsflow/api/v1/me answered 404"):
        check_sign_in(elsewhere, "olga", "operator-pw")
