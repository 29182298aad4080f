from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pacsflow.settings import SettingsError, load_settings


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert (settings.bind, settings.http_port, settings.dicom_port) == ("127.0.0.1", 8000, 11112)
    assert settings.ae_title == "PACSFLOW" and settings.airflow_port == 8080
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'var' / 'pacsflow.db'}"
    assert settings.storage_root == tmp_path / "var" / "storage"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSFLOW_HTTP_PORT", "9000")
    monkeypatch.setenv("PACSFLOW_DATABASE_URL", "postgresql://u@localhost/db")
    monkeypatch.setenv("PACSFLOW_MAX_OBJECT_SIZE", "10MiB")
    settings = load_settings()
    assert settings.http_port == 9000
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@localhost/db"
    assert int(settings.max_object_size) == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PACSFLOW_HTTP_PORT", "eighty", "PACSFLOW_HTTP_PORT: Input should be a valid integer"),
        ("PACSFLOW_DICOM_PORT", "70000", "PACSFLOW_DICOM_PORT: Input should be less than"),
        (
            "PACSFLOW_AE_TITLE",
            "WAY_TOO_LONG_AE_TITLE",
            "PACSFLOW_AE_TITLE: must be 1 to 16",
        ),
        (
            "PACSFLOW_DATABASE_URL",
            "mysql://x",
            "PACSFLOW_DATABASE_URL: must be a sqlite",
        ),
        ("PACSFLOW_DUPLICATE_POLICY", "ignore", "PACSFLOW_DUPLICATE_POLICY: Input should be"),
    ],
)
def test_errors_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert message in str(error.value)


def test_celery_needs_airflow_on_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSFLOW_AIRFLOW_EXECUTOR", "celery")
    with pytest.raises(SettingsError, match="set PACSFLOW_AIRFLOW_DATABASE_URL=postgresql"):
        load_settings()
    monkeypatch.setenv("PACSFLOW_AIRFLOW_DATABASE_URL", "postgresql://u@localhost/airflow")
    assert load_settings().airflow_executor == "celery"


def test_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "pacsflow.toml"
    config.write_text('http_port = 8100\nae_title = "LAB"\n')
    monkeypatch.setenv("PACSFLOW_CONFIG", str(config))
    monkeypatch.setenv("PACSFLOW_AE_TITLE", "FROM_ENV")
    settings = load_settings()
    assert settings.http_port == 8100 and settings.ae_title == "FROM_ENV"


def test_unknown_config_key_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "pacsflow.toml"
    config.write_text("http_prot = 8100\n")
    monkeypatch.setenv("PACSFLOW_CONFIG", str(config))
    with pytest.raises(SettingsError, match="PACSFLOW_HTTP_PROT: Extra inputs are not permitted"):
        load_settings()


def test_a_secret_made_by_processes_starting_together_is_one_secret(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(lambda _: settings.persistent_secret("airflow/x"), range(32)))
    assert len(values) == 1 and values != {""}
    assert oct((tmp_path / "airflow" / "x").stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in (tmp_path / "airflow").iterdir()] == ["x"]
