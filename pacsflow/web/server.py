"""Serves the web app with gunicorn's threaded workers, configured from pacsflow's settings."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from pacsflow.settings import Settings

# No query strings in access logs: QIDO parameters can carry patient names and IDs.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


def close_worker_app(server: Any, worker: Any) -> None:
    """Gunicorn's worker_exit hook: a stopping worker writes its pending audit records."""
    if worker.wsgi is not None:
        from pacsflow.web.app import close_app

        close_app(worker.wsgi)


class WebServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.bind}:{self.settings.http_port}",
            "workers": self.settings.web_workers,
            "threads": self.settings.web_threads,
            "worker_class": "gthread",
            "timeout": 600,  # large STOW uploads and retrievals
            "keepalive": 75,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "loglevel": self.settings.log_level.lower(),
            "proc_name": "pacsflow-web",
            "worker_exit": close_worker_app,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from pacsflow.web.app import create_app

        return create_app(self.settings)
