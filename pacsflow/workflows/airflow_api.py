"""The few calls pacsflow makes to Airflow's REST API: start a DAG run, read its state."""

from __future__ import annotations

from typing import Any

import requests

from pacsflow.operators.client import http_session

TIMEOUT = (5.0, 30.0)
AIRFLOW_RETRIES = 3


class AirflowError(RuntimeError):
    """Airflow answered, but not as expected; the message names the call and its answer."""


class AirflowUnavailable(AirflowError):
    """Airflow could not be reached; try again later."""


class AirflowClient:
    """A session with Airflow's API server, signed in with a user of its auth manager."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        # Airflow on SQLite answers 500 now and then while its database is locked; every
        # call is safe to repeat (a repeated trigger finds its run id taken: 409).
        self._session = http_session(None, AIRFLOW_RETRIES, retry_post=True)
        self._token: str | None = None

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self._send_signed_in(method, path, **kwargs)
        if response.status_code == 401:  # the token expired: sign in again, once
            self._token = None
            response = self._send_signed_in(method, path, **kwargs)
        return response

    def _send_signed_in(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            self._token = self._sign_in()
        headers = {"Authorization": f"Bearer {self._token}"}
        return self._send(method, path, headers=headers, **kwargs)

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            return self._session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise AirflowUnavailable(f"Airflow at {self.base_url} is unreachable: {exc}") from exc

    def _sign_in(self) -> str:
        response = self._send("POST", "/auth/token", json=self._credentials)
        if response.status_code != 201:
            raise _error("signing in to Airflow", response)
        return str(response.json()["access_token"])

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Start a run; False if a run with this id exists already (a retried trigger)."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        response = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        if response.status_code == 409:
            return False
        if response.status_code not in (200, 201):
            raise _error(f"starting DAG {dag_id}", response)
        return True

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """The run as Airflow describes it (``state``, ``conf``, dates, ...); None if unknown."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        return self._get_if_found(path, f"reading run {run_id} of DAG {dag_id}")

    def runs(
        self, dag_id: str = "~", limit: int = 1000, run_id_pattern: str | None = None
    ) -> list[dict[str, Any]]:
        """The DAG's (``~``: every DAG's) newest runs, up to ``limit``; with a pattern only
        the runs whose id contains it."""
        params: dict[str, Any] = {"limit": limit, "order_by": "-run_after"}
        if run_id_pattern is not None:
            params["run_id_pattern"] = run_id_pattern
        response = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)
        if response.status_code != 200:
            raise _error(f"listing runs of DAG {dag_id}", response)
        return list(response.json()["dag_runs"])

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as Airflow describes it (``tags``, ``description``, ...); None if unknown."""
        return self._get_if_found(f"/api/v2/dags/{dag_id}", f"reading DAG {dag_id}")

    def _get_if_found(self, path: str, doing: str) -> dict[str, Any] | None:
        response = self._request("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(doing, response)
        result: dict[str, Any] = response.json()
        return result

    def dags(self, tag: str) -> list[dict[str, Any]]:
        """The DAGs tagged ``tag``, in order of their ids."""
        params = {"tags": tag, "limit": 1000, "order_by": "dag_id"}
        response = self._request("GET", "/api/v2/dags", params=params)
        if response.status_code != 200:
            raise _error(f"listing DAGs tagged {tag}", response)
        return list(response.json()["dags"])


def _error(doing: str, response: requests.Response) -> AirflowError:
    if response.status_code >= 500:
        return AirflowUnavailable(f"{doing}: Airflow answered {response.status_code}")
    return AirflowError(f"{doing}: Airflow answered {response.status_code}: {response.text[:300]}")
