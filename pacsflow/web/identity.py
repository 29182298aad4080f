"""Who may sign in: pacsflow's database users, an LDAP directory or an OpenID Connect provider.

Flask-AppBuilder does the sign-in (its AUTH_DB, AUTH_LDAP and AUTH_OAUTH types); this module
turns pacsflow's settings into FAB's configuration and subclasses FAB's security manager for
what FAB leaves to the application: reading the claims of an OpenID Connect provider, and
handing the groups of every directory or provider sign-in to one hook.

Directory and provider users are created at their first sign-in. Their roles are recomputed
from their groups at every sign-in (PACSFLOW_ROLE_GROUPS), plus PACSFLOW_AUTH_DEFAULT_ROLE;
without either they are signed in but may see nothing. Their memberships in the projects
PACSFLOW_PROJECT_GROUPS names are recomputed likewise; those in other projects are left to
admins and Managers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final

from flask import current_app
from flask_appbuilder.const import AUTH_DB, AUTH_LDAP, AUTH_OAUTH
from flask_appbuilder.security.sqla.manager import SecurityManager

from pacsflow.archive.access import ProjectRole
from pacsflow.archive.projects import sync_group_memberships
from pacsflow.settings import ENV_PREFIX, Settings, SettingsError
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import RoleName

__all__ = [
    "NO_ROLE",
    "OIDC_PROVIDER",
    "PacsflowSecurityManager",
    "after_external_sign_in",
    "identity_config",
]

logger = logging.getLogger(__name__)

OIDC_PROVIDER: Final = "oidc"  # FAB's provider name: /login/oidc and /oauth-authorized/oidc
NO_ROLE: Final = "Public"  # FAB's role without permissions, for users no group maps
HTTP_TIMEOUT: Final = 10.0  # seconds, for every request to the OpenID provider
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
PROJECT_ROLE_RANK: Final = list(ProjectRole)  # least to most allowed, as declared

# The directory entry of the sign-in in progress, as FAB's search found it.
_ldap_entry: ContextVar[Mapping[str, list[bytes]]] = ContextVar("pacsflow_ldap_entry")


def identity_config(settings: Settings) -> dict[str, Any]:
    """FAB's AUTH_* configuration for PACSFLOW_AUTH; db keeps FAB's database sign-in."""
    if settings.auth == "db":
        return {"AUTH_TYPE": AUTH_DB, "AUTH_USER_REGISTRATION": False}
    external = {
        "AUTH_USER_REGISTRATION": True,
        "AUTH_USER_REGISTRATION_ROLE": _default_role(settings),
        "AUTH_ROLES_MAPPING": _roles_mapping(settings),
        "AUTH_ROLES_SYNC_AT_LOGIN": True,
    }
    if settings.auth == "ldap":
        return {**external, **_ldap_config(settings)}
    return {**external, **_oidc_config(settings)}


def after_external_sign_in(user: Any, groups: Sequence[str]) -> None:
    """Called after every successful LDAP or OpenID Connect sign-in with the user's groups
    (LDAP: the DNs in PACSFLOW_LDAP_GROUP_FIELD; OIDC: the claim PACSFLOW_OIDC_GROUPS_CLAIM),
    to bring their project memberships in line with PACSFLOW_PROJECT_GROUPS."""
    logger.debug("user %s signed in with %d groups", user.id, len(groups))
    mapping = current_app.config["PACSFLOW_SETTINGS"].project_groups
    if not mapping:
        return
    with archive().write_connection() as conn:
        missing = sync_group_memberships(conn, user.id, _project_roles(groups, mapping))
    for name in missing:
        logger.warning(
            "%sPROJECT_GROUPS names project %r, which does not exist: create it or take it "
            "out of the mapping",
            ENV_PREFIX,
            name,
        )


class PacsflowSecurityManager(SecurityManager):
    """FAB's security manager, reading OpenID Connect claims and reporting groups."""

    def auth_user_ldap(self, username: str, password: str) -> Any | None:
        reset = _ldap_entry.set({})
        try:
            user = super().auth_user_ldap(username, password)
            entry = _ldap_entry.get()
        finally:
            _ldap_entry.reset(reset)
        if user:
            after_external_sign_in(user, self.ldap_extract_list(entry, self.auth_ldap_group_field))
        return user

    def _search_ldap(self, ldap: Any, con: Any, username: str) -> tuple[Any, Any]:
        """FAB keeps the entry it finds to itself; remember it for the groups hook."""
        user_dn, attributes = super()._search_ldap(ldap, con, username)
        _ldap_entry.set(attributes or {})
        return user_dn, attributes

    def auth_user_oauth(self, userinfo: Mapping[str, Any]) -> Any | None:
        user = super().auth_user_oauth(userinfo)
        if user:
            after_external_sign_in(user, userinfo.get("role_keys", []))
        return user

    def oauth_user_info(self, provider: str, response: Mapping[str, Any]) -> dict[str, Any]:
        """FAB's user fields from the ID token, completed by the userinfo endpoint: providers
        may put profile and group claims in either (oidc-provider only in the latter).

        ``response`` is Authlib's token response; Authlib has checked the ID token's signature,
        issuer, audience and nonce and put its claims under ``userinfo``.
        """
        id_claims = response.get("userinfo")
        if not id_claims:
            raise ValueError(f"{provider}: no ID token in the token response")
        claims = {**id_claims}
        extra = self.oauth_remotes[provider].userinfo(token=response)
        if extra.get("sub") != id_claims["sub"]:
            raise ValueError(f"{provider}: userinfo describes another subject than the ID token")
        claims.update(extra)
        settings: Settings = current_app.config["PACSFLOW_SETTINGS"]
        return {
            "username": claims.get("preferred_username") or claims["sub"],
            "email": claims.get("email", ""),
            "first_name": claims.get("given_name") or claims.get("name", ""),
            "last_name": claims.get("family_name", ""),
            "role_keys": _groups(claims.get(settings.oidc_groups_claim)),
        }


def _project_roles(
    groups: Sequence[str], mapping: Mapping[str, Mapping[str, str]]
) -> dict[str, str | None]:
    """For each project the mapping names, the highest role the user's groups give there;
    None where none of them does."""
    given: dict[str, list[ProjectRole]] = {
        name: [] for projects in mapping.values() for name in projects
    }
    for group in groups:
        for name, role in mapping.get(group, {}).items():
            given[name].append(ProjectRole(role))
    return {
        name: max(roles, key=PROJECT_ROLE_RANK.index) if roles else None
        for name, roles in given.items()
    }


def _groups(claim: Any) -> list[str]:
    """A groups claim is a list of names (a lone name from some providers); else none."""
    if isinstance(claim, str):
        return [claim]
    if isinstance(claim, list):
        return [str(group) for group in claim]
    return []


def _role(variable: str, name: str) -> str:
    roles = [role.value for role in RoleName]
    if name not in roles:
        raise SettingsError(
            f"{ENV_PREFIX}{variable}: {name!r} is not a role; use one of {', '.join(roles)}"
        )
    return name


def _default_role(settings: Settings) -> str:
    if not settings.auth_default_role:
        return NO_ROLE
    return _role("AUTH_DEFAULT_ROLE", settings.auth_default_role)


def _roles_mapping(settings: Settings) -> dict[str, list[str]]:
    """Groups that give only project roles map to no FAB role: FAB reads a directory user's
    groups only while this mapping is not empty."""
    mapping: dict[str, list[str]] = {group: [] for group in settings.project_groups}
    for group, role in settings.role_groups.items():
        mapping[group] = [_role("ROLE_GROUPS", role)]
    return mapping


def _ldap_config(settings: Settings) -> dict[str, Any]:
    """Search-then-bind: the bind account finds the user's entry, whose password is then
    checked by binding as that entry."""
    bind_password = settings.ldap_bind_password
    config: dict[str, Any] = {
        "AUTH_TYPE": AUTH_LDAP,
        "AUTH_LDAP_SERVER": settings.ldap_url,
        "AUTH_LDAP_BIND_USER": settings.ldap_bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": bind_password.get_secret_value() if bind_password else "",
        "AUTH_LDAP_SEARCH": settings.ldap_search_base,
        "AUTH_LDAP_UID_FIELD": settings.ldap_uid_field,
        "AUTH_LDAP_GROUP_FIELD": settings.ldap_group_field,
        "AUTH_LDAP_USE_TLS": settings.ldap_start_tls,
    }
    if settings.ldap_ca_certs is not None:
        config["AUTH_LDAP_TLS_CACERTFILE"] = str(settings.ldap_ca_certs)
        config["AUTH_LDAP_TLS_DEMAND"] = True
    return config


def _oidc_config(settings: Settings) -> dict[str, Any]:
    secret = settings.oidc_client_secret
    provider = {
        "name": OIDC_PROVIDER,
        "icon": "fa-openid",
        "token_key": "access_token",  # FAB keeps it in the session; its default is OAuth 1's
        "remote_app": {
            "client_id": settings.oidc_client_id,
            "client_secret": secret.get_secret_value() if secret else "",
            "server_metadata_url": f"{settings.oidc_issuer}{DISCOVERY_PATH}",
            "client_kwargs": {
                "scope": settings.oidc_scopes,
                "code_challenge_method": "S256",  # PKCE, which OAuth 2.1 makes mandatory
                "default_timeout": HTTP_TIMEOUT,
            },
        },
    }
    return {"AUTH_TYPE": AUTH_OAUTH, "OAUTH_PROVIDERS": [provider]}
