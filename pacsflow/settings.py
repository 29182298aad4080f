"""Settings from ``PACSFLOW_*`` environment variables and an optional TOML file.

Every setting has a safe default so that ``make up`` works on a fresh machine; a wrong
value stops the start with a message naming the variable and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "PACSFLOW_"
Port = Annotated[int, Field(ge=1, le=65535)]
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
_AE_TITLE = re.compile(
    r"^[\x20-\x5b\x5d-\x7e]{1,16}$"
)  # default character repertoire, no backslash


def check_ae_title(value: str) -> str:
    """An AE title (PS3.5: up to 16 characters of the default repertoire, no backslash)."""
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError("must be 1 to 16 printable ASCII characters without backslash")
    return value.strip()


def _decode_json(value: object) -> object:
    """A setting given as JSON in the environment, decoded (empty: an empty object)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not JSON ({exc})") from None


class SettingsError(ValueError):
    """A setting is wrong; the message names the variable and the problem."""


class Settings(BaseSettings):
    """The platform's settings; see README for each variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    home: Path = Path("var")
    database_url: str = ""
    storage_path: Path | None = None
    storage_url: str = ""  # empty: files under storage_path; s3://bucket/prefix: S3
    s3_endpoint_url: str = ""  # empty: AWS S3; else an S3-compatible server (MinIO, Ceph...)
    s3_region: str = ""  # empty: from the AWS configuration
    bind: str = "127.0.0.1"
    http_port: Port = 8000
    dicom_port: Port = 11112
    ae_title: str = "PACSFLOW"
    airflow_port: Port = 8080
    airflow_url: str = ""  # empty: Airflow's API server on this machine
    web_url: str = ""  # empty: pacsflow's web app on this machine
    public_url: str = ""  # empty: web_url; where browsers reach the web app (links in Airflow)
    airflow_database_url: str = ""  # empty: SQLite in $PACSFLOW_HOME/airflow
    airflow_parallelism: Annotated[int, Field(ge=1, le=256)] = 4
    airflow_executor: Literal["local", "celery", "kubernetes"] = "local"
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    routing: Path | None = None  # empty: the shipped default rules
    search_url: str = ""  # empty: the embedded search on the archive's database
    search_username: str = ""
    search_password: SecretStr | None = None
    search_ca_certs: Path | None = None
    search_verify_certs: bool = True
    search_client_cert: Path | None = None
    search_client_key: Path | None = None
    series_quiet_seconds: Annotated[float, Field(ge=0)] = 10.0
    admin_password: SecretStr | None = None
    secret_key: SecretStr | None = None
    max_object_size: ByteSize = ByteSize(4 * 1024**3)
    duplicate_policy: Literal["reject", "overwrite"] = "reject"
    dicom_accept_all_calling_aes: bool = False
    dicom_check_called_ae: bool = True
    dicom_max_associations: Annotated[int, Field(ge=1, le=1000)] = 16
    dicom_max_pdu: Annotated[int, Field(ge=0, le=2**32 - 1)] = 262144  # 0: unlimited
    dicom_acse_timeout: Annotated[float, Field(gt=0)] = 30.0
    dicom_dimse_timeout: Annotated[float, Field(gt=0)] = 60.0
    dicom_network_timeout: Annotated[float, Field(gt=0)] = 60.0
    web_workers: Annotated[int, Field(ge=1, le=64)] = 2
    web_threads: Annotated[int, Field(ge=1, le=256)] = 8
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 8.0  # login session lifetime
    # Where failed sign-ins are counted: memory:// is per web worker; redis://host:6379/0 shared.
    login_limit_storage: str = "memory://"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Sign-in (README "Sign-in with LDAP or OpenID Connect"): pacsflow's own users (db), an
    # LDAP directory (ldap) or an OpenID Connect provider (oidc).
    auth: Literal["db", "ldap", "oidc"] = "db"
    ldap_url: str = ""  # ldap://host or ldaps://host
    ldap_bind_dn: str = ""  # the account that searches the directory for users
    ldap_bind_password: SecretStr | None = None
    ldap_search_base: str = ""  # where users are searched, e.g. ou=people,dc=example,dc=org
    ldap_uid_field: str = "uid"  # the attribute users sign in with (sAMAccountName on AD)
    ldap_group_field: str = "memberOf"  # the user's attribute listing their group DNs
    ldap_start_tls: bool = False
    ldap_ca_certs: Path | None = None  # the directory's CA; empty: the system's
    oidc_issuer: str = ""  # the provider's discovery: <issuer>/.well-known/openid-configuration
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile groups"
    oidc_groups_claim: str = "groups"
    # JSON object: group (LDAP DN or OIDC group name) -> pacsflow role, checked at start.
    role_groups: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # JSON object: group -> {project name: project role}; memberships synced at each sign-in.
    project_groups: Annotated[dict[str, dict[str, str]], NoDecode] = Field(default_factory=dict)
    auth_default_role: str = ""  # role of every LDAP/OIDC user besides their groups'; empty: none

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("search_url")
    @classmethod
    def _check_search_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL of an OpenSearch cluster")
        return value

    @field_validator("airflow_url", "web_url", "public_url", "s3_endpoint_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("ldap_url")
    @classmethod
    def _check_ldap_url(cls, value: str) -> str:
        if not all(url.startswith(("ldap://", "ldaps://")) for url in value.split()):
            raise ValueError("must be ldap://HOST[:PORT] or ldaps://HOST[:PORT] (several: spaces)")
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _check_oidc_issuer(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be the provider's issuer URL, e.g. https://keycloak.example.org/realms/lab"
            )
        return value.rstrip("/")

    @field_validator("oidc_scopes")
    @classmethod
    def _check_oidc_scopes(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("must include openid (e.g. openid email profile groups)")
        return value

    @field_validator("role_groups", mode="before")
    @classmethod
    def _parse_role_groups(cls, value: object) -> object:
        """A JSON object in the environment; a table in the TOML file."""
        value = _decode_json(value)
        if not isinstance(value, dict) or not all(
            isinstance(group, str) and isinstance(role, str) for group, role in value.items()
        ):
            raise ValueError(
                'must be a JSON object of group to role, e.g. {"cn=pacsflow-admins,ou=groups,'
                'dc=example,dc=org": "Admin", "pacsflow-researchers": "Researcher"}'
            )
        return value

    @field_validator("project_groups", mode="before")
    @classmethod
    def _parse_project_groups(cls, value: object) -> object:
        """Like role_groups; names and roles are checked here, so that a typo stops the start
        instead of failing each sign-in."""
        # pacsflow.archive.projects imports this module (check_ae_title): import it late
        from pacsflow.archive.access import ProjectRole
        from pacsflow.archive.projects import check_project_name

        value = _decode_json(value)
        if not isinstance(value, dict) or not all(
            isinstance(projects, dict) and all(isinstance(role, str) for role in projects.values())
            for projects in value.values()
        ):
            raise ValueError(
                "must be a JSON object of group to an object of project to project role, e.g. "
                '{"cn=lung-team,ou=groups,dc=example,dc=org": {"lung": "Researcher"}}'
            )
        roles = [role.value for role in ProjectRole]
        for group, projects in value.items():
            for name, role in projects.items():
                try:
                    check_project_name(name)
                except ValueError as exc:
                    raise ValueError(f"group {group!r}: {exc}") from None
                if role not in roles:
                    raise ValueError(
                        f"group {group!r}, project {name!r}: {role!r} is not a project role; "
                        f"use one of {', '.join(roles)}"
                    )
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str) -> str:
        if value and not _S3_URL.match(value):
            raise ValueError(
                "must be s3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3 to 63 "
                "lowercase letters, digits, dots and hyphens); leave it empty to keep files "
                "under PACSFLOW_STORAGE_PATH"
            )
        return value.rstrip("/")

    @field_validator("database_url", "airflow_database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @model_validator(mode="after")
    def _check_celery_database(self) -> Settings:
        if self.airflow_executor != "local" and not self.airflow_database_url.startswith(
            "postgresql"
        ):
            raise ValueError(
                f"PACSFLOW_AIRFLOW_EXECUTOR={self.airflow_executor} needs Airflow's metadata "
                "database on PostgreSQL: set PACSFLOW_AIRFLOW_DATABASE_URL=postgresql://..."
            )
        return self

    @model_validator(mode="after")
    def _check_storage(self) -> Settings:
        if self.storage_url and self.storage_path is not None:
            raise ValueError(
                "PACSFLOW_STORAGE_PATH and PACSFLOW_STORAGE_URL are both set: objects go "
                "either to files under the path or to S3; unset one of them"
            )
        for name in ("s3_endpoint_url", "s3_region"):
            if getattr(self, name) and not self.storage_url:
                raise ValueError(
                    f"{ENV_PREFIX}{name.upper()} is only used with S3 storage: set "
                    f"PACSFLOW_STORAGE_URL=s3://BUCKET/PREFIX too, or unset it"
                )
        return self

    @model_validator(mode="after")
    def _check_identity(self) -> Settings:
        required = {
            "db": (),
            "ldap": ("ldap_url", "ldap_bind_dn", "ldap_bind_password", "ldap_search_base"),
            "oidc": ("oidc_issuer", "oidc_client_id", "oidc_client_secret"),
        }[self.auth]
        missing = [f"{ENV_PREFIX}{name.upper()}" for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"{ENV_PREFIX}AUTH={self.auth} needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _default_urls(self) -> Settings:
        """On one machine the processes reach each other on the loopback interface."""
        self.airflow_url = self.airflow_url or f"http://127.0.0.1:{self.airflow_port}"
        self.web_url = self.web_url or f"http://127.0.0.1:{self.http_port}"
        self.public_url = self.public_url or self.web_url
        return self

    @cached_property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'pacsflow.db'}"

    @property
    def airflow_home(self) -> Path:
        return self.resolved_home / "airflow"

    @property
    def airflow_sqlalchemy_url(self) -> str:
        return self.airflow_database_url or f"sqlite:///{self.airflow_home / 'airflow.db'}"

    @property
    def storage_root(self) -> Path:
        return (self.storage_path or self.resolved_home / "storage").expanduser().resolve()

    def persistent_secret(
        self, name: str, generate: Callable[[], str] = lambda: secrets.token_urlsafe(32)
    ) -> str:
        """Read a generated secret kept in $PACSFLOW_HOME, creating it on first use.

        Several processes may start at once: the secret is written whole to a private
        file, then linked into place, which fails if another process got there first.
        """
        path = self.resolved_home / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(fd, "w") as f:  # mkstemp makes it 0600
                    f.write(generate() + "\n")
                with contextlib.suppress(FileExistsError):
                    os.link(draft, path)
            finally:
                os.unlink(draft)
        return path.read_text().strip()

    @property
    def flask_secret_key(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return self.persistent_secret("secret_key")


def load_settings(**overrides: object) -> Settings:
    """Load and validate settings, turning pydantic's report into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            where = f"{ENV_PREFIX}{field.upper()}: " if field else ""  # empty: several fields
            problems.append(f"{where}{error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
