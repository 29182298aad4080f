#!/opt/pacsflow/.venv/bin/python
"""The image's entrypoint: run a command with the environment `pacsflow up` gives Airflow.

Every container of the image (web, receiver, dispatcher, Airflow's components, Celery
workers, KubernetesExecutor task pods) starts through it, so Airflow is configured the
one way pacsflow configures it, from the ``PACSFLOW_*`` settings
(:func:`pacsflow.workflows.airflow_env.airflow_environment`). A variable the container
is given explicitly wins, e.g. ``AIRFLOW__API__BASE_URL`` for the address browsers use.
"""

from __future__ import annotations

import os
import sys

from pacsflow.settings import SettingsError, load_settings
from pacsflow.workflows.airflow_env import airflow_environment


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: pacsflow-env COMMAND [ARG...]  (e.g. pacsflow web, airflow scheduler)")
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(str(exc))
    os.execvpe(argv[0], argv, {**airflow_environment(settings), **os.environ})


if __name__ == "__main__":
    main(sys.argv[1:])
