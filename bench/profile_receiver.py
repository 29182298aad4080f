#!/usr/bin/env python3
"""Run ``pacsflow receiver`` with cProfile in every thread; write the merged stats on exit.

``python -m cProfile -m pacsflow receiver`` sees only the main thread, which just waits for
SIGTERM: pynetdicom handles each association in threads of its own. Here every new thread
starts its own profiler, and they are merged when the receiver stops (SIGTERM/Ctrl-C).

Usage: python bench/profile_receiver.py OUTPUT.prof   (bench_cstore.py --profile-receiver)
Read:  python -c "import pstats; pstats.Stats('OUTPUT.prof').sort_stats('cumulative')
       .print_stats(25)"
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

_profilers: list[cProfile.Profile] = []
_lock = threading.Lock()


def _profile_this_thread(_frame: FrameType, _event: str, _arg: Any) -> None:
    """threading's bootstrap hook: the thread's first event replaces it with a profiler."""
    profiler = cProfile.Profile()
    with _lock:
        _profilers.append(profiler)
    profiler.enable()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    output = Path(sys.argv[1])
    from pacsflow.cli import main as pacsflow_main

    threading.setprofile(_profile_this_thread)
    main_profiler = cProfile.Profile()
    main_profiler.enable()
    try:
        pacsflow_main(["receiver"], standalone_mode=False)
    finally:
        main_profiler.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = pstats.Stats(main_profiler)
        with _lock:
            for profiler in _profilers:
                stats.add(profiler)
        stats.dump_stats(output)
        print(f"profile of {1 + len(_profilers)} threads written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
