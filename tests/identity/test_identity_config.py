"""The sign-in settings, FAB's configuration made from them, and the OIDC claims read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_appbuilder.const import AUTH_DB, AUTH_LDAP, AUTH_OAUTH

from pacsflow.settings import Settings, SettingsError, load_settings
from pacsflow.web.identity import NO_ROLE, OIDC_PROVIDER, identity_config
from pacsflow.web.security import security_manager
from tests.identity.helpers import migrated_app

LDAP = {
    "auth": "ldap",
    "ldap_url": "ldap://directory.example.org",
    "ldap_bind_dn": "cn=pacsflow,ou=services,dc=example,dc=org",
    "ldap_bind_password": "bind-password",
    "ldap_search_base": "ou=people,dc=example,dc=org",
}
OIDC = {
    "auth": "oidc",
    "oidc_issuer": "https://keycloak.example.org/realms/lab/",
    "oidc_client_id": "pacsflow",
    "oidc_client_secret": "client-secret",
}


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(home=tmp_path, **overrides)


def test_database_users_by_default(tmp_path: Path) -> None:
    assert identity_config(settings(tmp_path)) == {
        "AUTH_TYPE": AUTH_DB,
        "AUTH_USER_REGISTRATION": False,
    }


def test_ldap_configuration(tmp_path: Path) -> None:
    config = identity_config(
        settings(tmp_path, **LDAP, role_groups={"cn=admins,dc=example,dc=org": "Admin"})
    )
    assert config == {
        "AUTH_TYPE": AUTH_LDAP,
        "AUTH_LDAP_SERVER": "ldap://directory.example.org",
        "AUTH_LDAP_BIND_USER": "cn=pacsflow,ou=services,dc=example,dc=org",
        "AUTH_LDAP_BIND_PASSWORD": "bind-password",
        "AUTH_LDAP_SEARCH": "ou=people,dc=example,dc=org",
        "AUTH_LDAP_UID_FIELD": "uid",
        "AUTH_LDAP_GROUP_FIELD": "memberOf",
        "AUTH_LDAP_USE_TLS": False,
        "AUTH_USER_REGISTRATION": True,
        "AUTH_USER_REGISTRATION_ROLE": NO_ROLE,
        "AUTH_ROLES_MAPPING": {"cn=admins,dc=example,dc=org": ["Admin"]},
        "AUTH_ROLES_SYNC_AT_LOGIN": True,
    }


def test_groups_that_give_only_project_roles_map_to_no_fab_role(tmp_path: Path) -> None:
    """FAB reads a directory user's groups only while AUTH_ROLES_MAPPING maps some group."""
    config = identity_config(
        settings(
            tmp_path,
            **LDAP,
            role_groups={"cn=admins,dc=example,dc=org": "Admin"},
            project_groups={
                "cn=lung,dc=example,dc=org": {"lung": "Researcher"},
                "cn=admins,dc=example,dc=org": {"lung": "Manager"},
            },
        )
    )
    assert config["AUTH_ROLES_MAPPING"] == {
        "cn=lung,dc=example,dc=org": [],
        "cn=admins,dc=example,dc=org": ["Admin"],
    }


def test_ldap_tls_with_the_directorys_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    config = identity_config(settings(tmp_path, **LDAP, ldap_start_tls=True, ldap_ca_certs=ca))
    assert config["AUTH_LDAP_USE_TLS"] is True
    assert config["AUTH_LDAP_TLS_CACERTFILE"] == str(ca)
    assert config["AUTH_LDAP_TLS_DEMAND"] is True


def test_oidc_configuration(tmp_path: Path) -> None:
    config = identity_config(settings(tmp_path, **OIDC, auth_default_role="Viewer"))
    assert config["AUTH_TYPE"] == AUTH_OAUTH
    assert config["AUTH_USER_REGISTRATION_ROLE"] == "Viewer"
    [provider] = config["OAUTH_PROVIDERS"]
    assert provider["name"] == OIDC_PROVIDER
    remote = provider["remote_app"]
    assert remote["server_metadata_url"] == (
        "https://keycloak.example.org/realms/lab/.well-known/openid-configuration"
    )
    assert (remote["client_id"], remote["client_secret"]) == ("pacsflow", "client-secret")
    assert remote["client_kwargs"]["scope"] == "openid email profile groups"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth": "ldap"}, "PACSFLOW_AUTH=ldap needs PACSFLOW_LDAP_URL, PACSFLOW_LDAP_BIND_DN"),
        ({**LDAP, "ldap_search_base": ""}, "needs PACSFLOW_LDAP_SEARCH_BASE"),
        ({"auth": "oidc"}, "PACSFLOW_AUTH=oidc needs PACSFLOW_OIDC_ISSUER"),
        ({**OIDC, "oidc_client_secret": ""}, "needs PACSFLOW_OIDC_CLIENT_SECRET"),
        ({"auth": "saml"}, "PACSFLOW_AUTH: Input should be 'db', 'ldap' or 'oidc'"),
        ({"ldap_url": "directory.example.org"}, "PACSFLOW_LDAP_URL: must be ldap://"),
        ({"ldap_url": "ldap://a ldapi:///"}, "PACSFLOW_LDAP_URL: must be ldap://"),
        ({"oidc_issuer": "keycloak.example.org"}, "PACSFLOW_OIDC_ISSUER: must be the provider"),
        ({"oidc_scopes": "email profile"}, "PACSFLOW_OIDC_SCOPES: must include openid"),
    ],
)
def test_wrong_settings_name_the_variable(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(tmp_path, **overrides)


def test_several_ldap_servers(tmp_path: Path) -> None:
    urls = "ldap://a.example.org ldaps://b.example.org:636"
    assert settings(tmp_path, ldap_url=urls).ldap_url == urls


def test_role_groups_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PACSFLOW_ROLE_GROUPS", '{"cn=admins,dc=example,dc=org": "Admin", "staff": "Viewer"}'
    )
    assert settings(tmp_path).role_groups == {
        "cn=admins,dc=example,dc=org": "Admin",
        "staff": "Viewer",
    }
    monkeypatch.setenv("PACSFLOW_ROLE_GROUPS", "")
    assert settings(tmp_path).role_groups == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cn=admins=Admin", "PACSFLOW_ROLE_GROUPS: is not JSON"),
        ('["Admin"]', "PACSFLOW_ROLE_GROUPS: must be a JSON object of group to role"),
        ('{"staff": ["Viewer"]}', "PACSFLOW_ROLE_GROUPS: must be a JSON object of group to role"),
    ],
)
def test_wrong_role_groups_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("PACSFLOW_ROLE_GROUPS", value)
    with pytest.raises(SettingsError, match=message):
        settings(tmp_path)


def test_project_groups_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PACSFLOW_PROJECT_GROUPS",
        '{"cn=lung-team,dc=example,dc=org": {"lung": "Researcher"}, '
        '"leads": {"lung": "Manager", "liver": "Viewer"}}',
    )
    assert settings(tmp_path).project_groups == {
        "cn=lung-team,dc=example,dc=org": {"lung": "Researcher"},
        "leads": {"lung": "Manager", "liver": "Viewer"},
    }
    monkeypatch.setenv("PACSFLOW_PROJECT_GROUPS", "")
    assert settings(tmp_path).project_groups == {}


def test_project_groups_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pacsflow.toml"
    config.write_text('[project_groups."cn=lung-team,dc=example,dc=org"]\nlung = "Researcher"\n')
    monkeypatch.setenv("PACSFLOW_CONFIG", str(config))
    assert settings(tmp_path).project_groups == {
        "cn=lung-team,dc=example,dc=org": {"lung": "Researcher"}
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lung-team=lung", "is not JSON"),
        ('["lung"]', "must be a JSON object of group to an object of project to project role"),
        ('{"staff": "lung"}', "must be a JSON object of group to an object of project"),
        ('{"staff": {"lung": ["Viewer"]}}', "must be a JSON object of group to an object"),
        ('{"staff": {"Lung": "Viewer"}}', "group 'staff': 'Lung' cannot name a project"),
        (
            '{"staff": {"lung": "Admin"}}',
            "group 'staff', project 'lung': 'Admin' is not a project role; "
            "use one of Viewer, Researcher, Manager",
        ),
    ],
)
def test_wrong_project_groups_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("PACSFLOW_PROJECT_GROUPS", value)
    with pytest.raises(SettingsError, match=f"PACSFLOW_PROJECT_GROUPS: .*{re.escape(message)}"):
        settings(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"role_groups": {"staff": "Reader"}}, "PACSFLOW_ROLE_GROUPS: 'Reader' is not a role"),
        ({"auth_default_role": "admin"}, "PACSFLOW_AUTH_DEFAULT_ROLE: 'admin' is not a role"),
    ],
)
def test_unknown_roles_stop_the_start(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=f"{message}; use one of Admin, Operator"):
        identity_config(settings(tmp_path, **LDAP, **overrides))


class FakeProvider:
    """Stands in for Authlib's client: answers the userinfo endpoint with ``claims``."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    def userinfo(self, token: dict[str, Any]) -> dict[str, Any]:
        return self.claims


@pytest.fixture(scope="module")
def oidc_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app configured for a provider it never reaches: Authlib fetches its metadata only
    when someone signs in."""
    home = tmp_path_factory.mktemp("home")
    with migrated_app(load_settings(home=home, **OIDC, oidc_groups_claim="roles")) as app:
        yield app


def user_info(app: Flask, id_token: dict[str, Any], userinfo: dict[str, Any]) -> Any:
    with app.app_context():
        sm = security_manager(app)
        sm.oauth_remotes[OIDC_PROVIDER] = FakeProvider(userinfo)
        return sm.oauth_user_info(OIDC_PROVIDER, {"access_token": "a", "userinfo": id_token})


def test_claims_of_the_id_token_and_the_userinfo_endpoint(oidc_app: Flask) -> None:
    id_token = {"sub": "0f3c", "preferred_username": "kim", "email": "kim@example.org"}
    userinfo = {"sub": "0f3c", "given_name": "Kim", "family_name": "Kay", "roles": ["a", "b"]}
    assert user_info(oidc_app, id_token, userinfo) == {
        "username": "kim",
        "email": "kim@example.org",
        "first_name": "Kim",
        "last_name": "Kay",
        "role_keys": ["a", "b"],
    }


def test_without_preferred_username_the_subject_is_the_username(oidc_app: Flask) -> None:
    info = user_info(oidc_app, {"sub": "0f3c"}, {"sub": "0f3c", "name": "Kim", "roles": "a"})
    assert info == {
        "username": "0f3c",
        "email": "",
        "first_name": "Kim",
        "last_name": "",
        "role_keys": ["a"],  # a lone group, as some providers send it
    }
    assert user_info(oidc_app, {"sub": "0f3c"}, {"sub": "0f3c"})["role_keys"] == []


def test_claims_about_another_subject_are_refused(oidc_app: Flask) -> None:
    with pytest.raises(ValueError, match="another subject"):
        user_info(oidc_app, {"sub": "0f3c"}, {"sub": "someone-else"})


def test_a_token_response_without_id_token_is_refused(oidc_app: Flask) -> None:
    with pytest.raises(ValueError, match="no ID token"):
        user_info(oidc_app, {}, {"sub": "0f3c"})
