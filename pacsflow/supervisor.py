"""Runs the platform's processes in the foreground: Ctrl-C stops every one of them.

Later services (receiver, Airflow, dispatcher) join as more entries in the same list.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

logger = logging.getLogger(__name__)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, for a service's main loop; handlers restored after."""
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


STOP_TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Service:
    name: str
    command: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)  # added to the parent's


class Supervisor:
    """Start services, watch them, stop all when one exits or a signal arrives."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = services
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for service in self.services:
            logger.info("starting %s", service.name)
            self.processes[service.name] = subprocess.Popen(
                list(service.command), env={**os.environ, **service.environment}
            )
        exit_code = 0
        while not self._stopping:
            for name, process in self.processes.items():
                code = process.poll()
                if code is not None:
                    logger.error("%s exited with status %s; stopping the others", name, code)
                    exit_code = code or 1
                    self._stopping = True
                    break
            time.sleep(0.5)
        self.stop()
        return exit_code

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self._stopping = True

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", name)
                process.kill()
                process.wait()
