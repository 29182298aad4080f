"""Settings for running pacsflow's processes on more than one machine."""

from __future__ import annotations

import pytest

from pacsflow.settings import SettingsError, load_settings


def test_service_urls_default_to_this_machine() -> None:
    settings = load_settings(http_port=8100, airflow_port=8180)
    assert settings.web_url == "http://127.0.0.1:8100"
    assert settings.airflow_url == "http://127.0.0.1:8180"
    assert settings.public_url == settings.web_url


def test_the_public_url_is_where_browsers_go() -> None:
    settings = load_settings(web_url="http://web:8000", public_url="https://pacs.lab.example/")
    assert (settings.web_url, settings.public_url) == (
        "http://web:8000",
        "https://pacs.lab.example",
    )
    with pytest.raises(SettingsError, match="PACSFLOW_PUBLIC_URL: must be an http://"):
        load_settings(public_url="pacs.lab.example")


def test_service_urls_name_other_machines() -> None:
    settings = load_settings(web_url="https://pacsflow.example.org/", airflow_url="http://af:8080")
    assert settings.web_url == "https://pacsflow.example.org"
    assert settings.airflow_url == "http://af:8080"
    with pytest.raises(SettingsError, match="PACSFLOW_AIRFLOW_URL: must be an http://"):
        load_settings(airflow_url="af:8080")


def test_the_kubernetes_executor_needs_postgresql() -> None:
    with pytest.raises(SettingsError, match="EXECUTOR=kubernetes needs Airflow's metadata"):
        load_settings(airflow_executor="kubernetes")
    settings = load_settings(
        airflow_executor="kubernetes", airflow_database_url="postgresql://airflow@db/airflow"
    )
    assert settings.airflow_executor == "kubernetes"
