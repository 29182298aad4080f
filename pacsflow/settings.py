"""Settings from ``PACSFLOW_*`` environment variables and an optional TOML file.

Every setting has a safe default so that ``make up`` works on a fresh machine; a wrong
value stops the start with a message naming the variable and what is wrong with it.
"""

from __future__ import annotations

import contextlib
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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
