#!/usr/bin/env python3
"""Run ``pacsflow receiver`` with cProfile in every thread and timers on the C-STORE steps.

``python -m cProfile -m pacsflow receiver`` sees only the main thread, which just waits for
SIGTERM: pynetdicom handles each association in threads of its own. Here every new thread
starts its own profiler, and they are merged when the receiver stops (SIGTERM/Ctrl-C).

``--steps`` times the steps of a C-STORE (``STEPS``), wall and thread CPU, and writes them
as ms per C-STORE when the receiver stops. cProfile shows where time goes but doubles the
receiver's time; the timers cost a few us per call (~1 % of a C-STORE), so without
``--stats`` the step times are those of a normal run.

Usage: python bench/profile_receiver.py [--stats FILE] [--steps FILE]
       (bench_cstore.py --profile-receiver / --receiver-steps)
Read:  python -c "import pstats; pstats.Stats('FILE').sort_stats('cumulative')
       .print_stats(25)"
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import pstats
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

# (where, what it is); the first is the C-STORE handler, which the others are counted per.
# Names as the calling module looks them up, so that the wrapper is what gets called.
STEPS: list[tuple[str, str]] = [
    ("pacsflow.receiver.handlers:handle_store", "C-STORE handler, all of the below"),
    ("pacsflow.receiver.handlers:stage_dataset", "copy spool -> staged Part-10, File Meta"),
    ("pacsflow.archive.ingest:_prepare", "size check, parse, validate, JSON, digest"),
    ("pacsflow.archive.ingest:dcmread", "  header parse (pydicom)"),
    ("pacsflow.archive.ingest:InstanceAttributes.from_dataset", "  index attributes"),
    ("pacsflow.archive.ingest:dicom_json", "  DICOM JSON"),
    ("pacsflow.archive.ingest:dataset_digest", "  SHA-256 of the data set"),
    ("pacsflow.archive.ingest:_store", "dedupe, place, sync, index, commit"),
    ("pacsflow.archive.ingest:_plan", "  dedupe lookup"),
    ("pacsflow.archive.storage:FileStorage.sync", "  fsync file + series directory"),
    ("pacsflow.archive.ingest:_index", "  index statements"),
    ("pynetdicom.service_class:StorageServiceClass.SCP", "pynetdicom: handler + response"),
    ("pynetdicom.dimse:DIMSEServiceProvider.send_msg", "  response encoding"),
    ("pynetdicom.dimse:DIMSEServiceProvider.receive_primitive", "pynetdicom: P-DATA -> spool"),
    ("pynetdicom.dul:DULServiceProvider._read_pdu_data", "pynetdicom: PDU reads"),
]

_profilers: list[cProfile.Profile] = []
_lock = threading.Lock()
_wall: dict[str, float] = defaultdict(float)
_cpu: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)


def _profile_this_thread(_frame: FrameType, _event: str, _arg: Any) -> None:
    """threading's bootstrap hook: the thread's first event replaces it with a profiler."""
    profiler = cProfile.Profile()
    with _lock:
        _profilers.append(profiler)
    profiler.enable()


def _timed(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            with _lock:
                _wall[step] += wall
                _cpu[step] += cpu
                _calls[step] += 1

    return timed


def _time_steps() -> None:
    """Replace each step's function by a timed one where it is looked up."""
    for step, _ in STEPS:
        module_name, _, qualname = step.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        if not hasattr(owner, name):
            print(f"profile_receiver: no {step}; not timed", file=sys.stderr)
            continue
        setattr(owner, name, _timed(step, getattr(owner, name)))


def step_table() -> str:
    """ms per C-STORE of every step, wall and thread CPU, from the timers so far."""
    stores = _calls[STEPS[0][0]]
    lines = [f"{stores} C-STORE requests; per request: calls, wall ms, CPU ms (thread time)"]
    for step, what in STEPS:
        if stores and _calls[step]:
            per = 1000.0 / stores
            lines.append(
                f"{what:<42} {_calls[step] / stores:5.1f} {_wall[step] * per:8.3f} "
                f"{_cpu[step] * per:8.3f}  {step}"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", type=Path, help="cProfile every thread; pstats to FILE")
    parser.add_argument("--steps", type=Path, help="time the C-STORE steps; table to FILE")
    args = parser.parse_args()
    if not (args.stats or args.steps):
        parser.error("give --stats, --steps or both")
    from pacsflow.cli import main as pacsflow_main

    if args.steps:
        _time_steps()
    main_profiler = cProfile.Profile()
    if args.stats:
        threading.setprofile(_profile_this_thread)
        main_profiler.enable()
    try:
        pacsflow_main(["receiver"], standalone_mode=False)
    finally:
        if args.stats:
            main_profiler.disable()
            threading.setprofile(None)  # type: ignore[arg-type]
            stats = pstats.Stats(main_profiler)
            with _lock:
                for profiler in _profilers:
                    stats.add(profiler)
            stats.dump_stats(args.stats)
            print(f"profile of {1 + len(_profilers)} threads in {args.stats}", file=sys.stderr)
        if args.steps:
            table = step_table()
            args.steps.write_text(table)
            print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
