"""The supervisor behind `pacsflow up`: one service failing stops the rest; signals stop all."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import psutil

from pacsflow.supervisor import Service, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_failing_service_stops_the_others() -> None:
    failing = [sys.executable, "-c", "import time, sys; time.sleep(1); sys.exit(3)"]
    supervisor = Supervisor([Service("sleeper", SLEEPER), Service("failing", failing)])
    started = time.monotonic()
    assert supervisor.run() == 3
    assert time.monotonic() - started < 30
    assert all(p.poll() is not None for p in supervisor.processes.values())


def test_environment_reaches_the_service() -> None:
    check = [
        sys.executable,
        "-c",
        "import os, sys; sys.exit(0 if os.environ['X_PF'] == '1' else 4)",
    ]
    supervisor = Supervisor([Service("check", check, {"X_PF": "1"}), Service("sleeper", SLEEPER)])
    assert supervisor.run() == 1  # "check" exited (with 0): the platform stops, as for any exit
    assert supervisor.processes["check"].returncode == 0


def test_sigterm_stops_every_service() -> None:
    supervisor = Supervisor([Service("a", SLEEPER), Service("b", SLEEPER)])
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert supervisor.run() == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    pids = [p.pid for p in supervisor.processes.values()]
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )
