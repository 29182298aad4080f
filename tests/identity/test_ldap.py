"""LDAP sign-in against a real slapd (Debian's package), started from a fresh configuration.

The directory (directory.ldif) is loaded over LDAP, so that slapd's memberof overlay writes
each user's memberOf, which pacsflow maps to roles and project memberships.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist
import pytest
from flask import Flask
from flask.testing import FlaskClient
from ldif import LDIFRecordList

from pacsflow.settings import Settings, load_settings
from pacsflow.web import identity
from pacsflow.web.identity import NO_ROLE
from pacsflow.workflows.airflow_env import SERVICE_USER, service_password
from tests.conftest import join_project
from tests.identity.helpers import (
    create_projects,
    form_with,
    migrated_app,
    project_roles,
    roles_of,
    running,
)
from tests.live_server import free_port
from tests.web.web_helpers import basic

SLAPD = Path("/usr/sbin/slapd")  # Debian's slapd; scripts/install-test-tools.sh installs it
DIRECTORY = Path(__file__).with_name("directory.ldif")
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "directory-admin-password"
ADMINS = f"cn=pacsflow-admins,ou=groups,{SUFFIX}"
RESEARCHERS = f"cn=pacsflow-researchers,ou=groups,{SUFFIX}"
LUNG_TEAM = f"cn=lung-team,ou=groups,{SUFFIX}"
LUNG_LEADS = f"cn=lung-leads,ou=groups,{SUFFIX}"
STARTUP_SECONDS = 20

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {home}/slapd.pid
argsfile {home}/slapd.args

database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {home}/data
overlay memberof
"""


@dataclass(frozen=True)
class Directory:
    url: str

    def connect(self) -> Any:
        """A connection bound as the directory's administrator."""
        conn = ldap.initialize(self.url)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return conn


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    """slapd on a free port with directory.ldif loaded, stopped afterwards."""
    if not SLAPD.exists():
        pytest.fail(f"{SLAPD} not found: run scripts/install-test-tools.sh (Debian's slapd)")
    home = tmp_path_factory.mktemp("slapd")
    (home / "data").mkdir()
    conf = home / "slapd.conf"
    conf.write_text(
        SLAPD_CONF.format(home=home, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD)
    )
    url = f"ldap://127.0.0.1:{free_port()}"
    directory = Directory(url)
    # -d 0: stay in the foreground, so the test owns the process
    command = [SLAPD, "-f", conf, "-h", url, "-d", "0"]
    with running(
        "slapd", command, home / "slapd.log", lambda: _answers(directory), STARTUP_SECONDS
    ):
        _load(directory, DIRECTORY)
        yield directory


def _answers(directory: Directory) -> bool:
    try:
        directory.connect().unbind_s()
    except ldap.SERVER_DOWN:
        return False
    return True


def _load(directory: Directory, ldif: Path) -> None:
    records = LDIFRecordList(ldif.open())
    records.parse()
    conn = directory.connect()
    for dn, entry in records.all_records:
        conn.add_s(dn, ldap.modlist.addModlist(entry))
    conn.unbind_s()


def directory_settings(home: Path, directory: Directory, **overrides: Any) -> Settings:
    return load_settings(
        home=home,
        auth="ldap",
        ldap_url=directory.url,
        ldap_bind_dn=ROOT_DN,
        ldap_bind_password=ROOT_PASSWORD,
        ldap_search_base=f"ou=people,{SUFFIX}",
        **overrides,
    )


@pytest.fixture
def app(tmp_path: Path, directory: Directory) -> Iterator[Flask]:
    settings = directory_settings(
        tmp_path, directory, role_groups={ADMINS: "Admin", RESEARCHERS: "Researcher"}
    )
    with migrated_app(settings) as app:
        yield app


@pytest.fixture
def project_app(tmp_path: Path, directory: Directory) -> Iterator[Flask]:
    """Groups give project roles, and no group a global role (no PACSFLOW_ROLE_GROUPS, which
    FAB's reading of memberOf used to hang on); every user is a global Viewer, so that they
    may list their projects."""
    settings = directory_settings(
        tmp_path,
        directory,
        auth_default_role="Viewer",
        project_groups={
            LUNG_TEAM: {"lung": "Researcher"},
            LUNG_LEADS: {"lung": "Manager", "liver": "Viewer"},
        },
    )
    with migrated_app(settings) as app:
        yield app


def sign_in(client: FlaskClient, username: str, password: str) -> None:
    """Submit FAB's login form as a browser does (with its CSRF token)."""
    page = client.get("/login/")
    assert page.status_code == 200
    form = form_with(page.get_data(as_text=True), "http://localhost/login/", "csrf_token")
    form.fields.update(username=username, password=password)
    client.post(form.action, data=form.fields)


def projects_of(client: FlaskClient) -> dict[str, str | None]:
    response = client.get("/api/v1/projects")
    assert response.status_code == 200, response.get_data(as_text=True)
    return project_roles(response.get_json())


def signed_in_as(client: FlaskClient) -> dict[str, Any] | None:
    response = client.get("/api/v1/me")
    if response.status_code == 401:
        return None
    assert response.status_code == 200
    me: dict[str, Any] = response.get_json()
    return me


def test_directory_user_signs_in_with_the_role_of_their_group(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "alice", "alice-password")
    assert signed_in_as(client) == {"username": "alice", "roles": [NO_ROLE, "Researcher"]}
    with app.app_context():
        user = app.extensions["appbuilder"].sm.find_user(username="alice")
        assert (user.first_name, user.last_name, user.email) == (
            "Alice",
            "Archer",
            "alice@example.org",
        )
    assert client.get("/dicomweb/studies").status_code in (200, 204)


def test_admins_group_gives_admin(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "bob", "bob-password")
    assert signed_in_as(client) == {"username": "bob", "roles": ["Admin", NO_ROLE, "Researcher"]}


def test_a_user_in_no_mapped_group_gets_no_access(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "carol", "carol-password")
    assert signed_in_as(client) == {"username": "carol", "roles": [NO_ROLE]}
    assert client.get("/dicomweb/studies").status_code == 403


def test_wrong_password_is_refused(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "alice", "not-alices-password")
    assert signed_in_as(client) is None
    assert roles_of(app, "alice") is None  # not registered either


def test_a_user_removed_from_a_group_loses_its_role_at_next_sign_in(
    app: Flask, directory: Directory
) -> None:
    sign_in(app.test_client(), "dave", "dave-password")
    assert roles_of(app, "dave") == [NO_ROLE, "Researcher"]
    member = [(ldap.MOD_DELETE, "member", [f"uid=dave,ou=people,{SUFFIX}".encode()])]
    conn = directory.connect()
    conn.modify_s(RESEARCHERS, member)
    try:
        client = app.test_client()
        sign_in(client, "dave", "dave-password")
        assert signed_in_as(client) == {"username": "dave", "roles": [NO_ROLE]}
        assert roles_of(app, "dave") == [NO_ROLE]
    finally:
        conn.modify_s(RESEARCHERS, [(ldap.MOD_ADD, *member[0][1:])])
        conn.unbind_s()


def test_basic_auth_with_a_directory_password(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/dicomweb/studies", headers=basic("alice", "alice-password"))
    assert response.status_code in (200, 204)
    me = client.get("/api/v1/me", headers=basic("alice", "alice-password"))
    assert me.get_json() == {"username": "alice", "roles": [NO_ROLE, "Researcher"]}
    wrong = client.get("/dicomweb/studies", headers=basic("alice", "not-alices-password"))
    assert wrong.status_code == 401


def test_basic_auth_of_the_local_service_account_still_works(app: Flask) -> None:
    """Airflow's tasks use a database account the directory does not know."""
    password = service_password(app.config["PACSFLOW_SETTINGS"])
    response = app.test_client().get("/api/v1/me", headers=basic(SERVICE_USER, password))
    assert response.get_json() == {"username": SERVICE_USER, "roles": ["Operator"]}


def test_the_hook_receives_the_groups_of_each_sign_in(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        identity,
        "after_external_sign_in",
        lambda user, groups: calls.append((user.username, sorted(groups))),
    )
    sign_in(app.test_client(), "bob", "bob-password")
    app.test_client().get("/api/v1/me", headers=basic("alice", "alice-password"))
    sign_in(app.test_client(), "alice", "wrong-password")
    assert calls == [("bob", [ADMINS, RESEARCHERS]), ("alice", [RESEARCHERS])]


def test_a_group_mapped_to_a_project_makes_its_users_members(project_app: Flask) -> None:
    create_projects(project_app, "lung")
    client = project_app.test_client()
    sign_in(client, "erin", "erin-password")
    assert signed_in_as(client) == {"username": "erin", "roles": ["Viewer"]}
    assert projects_of(client) == {"lung": "Researcher"}


def test_a_user_removed_from_the_group_leaves_the_project_at_next_sign_in(
    project_app: Flask, directory: Directory
) -> None:
    create_projects(project_app, "lung")
    client = project_app.test_client()
    sign_in(client, "erin", "erin-password")
    assert projects_of(client) == {"lung": "Researcher"}
    member = [(ldap.MOD_DELETE, "member", [f"uid=erin,ou=people,{SUFFIX}".encode()])]
    conn = directory.connect()
    conn.modify_s(LUNG_TEAM, member)
    try:
        client = project_app.test_client()
        sign_in(client, "erin", "erin-password")
        assert signed_in_as(client) == {"username": "erin", "roles": ["Viewer"]}
        assert projects_of(client) == {}
    finally:
        conn.modify_s(LUNG_TEAM, [(ldap.MOD_ADD, *member[0][1:])])
        conn.unbind_s()


def test_sign_in_sets_roles_only_in_the_projects_the_mapping_names(project_app: Flask) -> None:
    create_projects(project_app, "lung", "heart")
    sign_in(project_app.test_client(), "erin", "erin-password")
    join_project(project_app, "erin", "Manager", project="heart")  # by hand: stays
    join_project(project_app, "erin", "Viewer", project="lung")  # by hand: the groups decide
    client = project_app.test_client()
    sign_in(client, "erin", "erin-password")
    assert projects_of(client) == {"heart": "Manager", "lung": "Researcher"}


def test_two_groups_mapping_one_project_give_the_higher_role(project_app: Flask) -> None:
    create_projects(project_app, "lung", "liver")
    client = project_app.test_client()
    sign_in(client, "frank", "frank-password")
    assert projects_of(client) == {"liver": "Viewer", "lung": "Manager"}


def test_a_mapped_project_that_does_not_exist_is_skipped(
    project_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    create_projects(project_app, "lung")
    caplog.set_level(logging.WARNING, logger=identity.__name__)
    client = project_app.test_client()
    sign_in(client, "frank", "frank-password")
    assert projects_of(client) == {"lung": "Manager"}
    assert [r.getMessage() for r in caplog.records if r.name == identity.__name__] == [
        "PACSFLOW_PROJECT_GROUPS names project 'liver', which does not exist: create it or "
        "take it out of the mapping"
    ]
