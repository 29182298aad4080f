#!/usr/bin/env python3
"""How soon processing starts after a series arrives: last instance stored -> DAG run.

Runs the whole platform (`pacsflow up`: web, receiver, dispatcher, Airflow on LocalExecutor)
on its default ports in a private network namespace (run as root), in a temporary home, with
routing rules that do nothing, so a run is `process_series` routing only. After one series
that warms Airflow up, series arrive one after another (STOW, one request per series); for
each, the time from the STOW response (its last instance stored and acknowledged) to its run
being queued, started and finished, from Airflow's record of the run. Printed as p50/p95
against the target: started within the quiet period plus 3 s. Orthanc has nothing comparable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from ct_series import Series, load_series
from harness import (
    BenchError,
    cannot_run_reason,
    load_average,
    log,
    machine_description,
    pacsflow_version,
    run_in_private_netns,
)
from platform_up import running_platform

from pacsflow.dicom.status import StoreStatus
from pacsflow.operators.report import describe
from pacsflow.operators.stow import post_files
from pacsflow.workflows.airflow_api import AirflowClient

NO_RULES = "version: 1\nrules: []\n"
STARTED_MARGIN_S = 3.0
STOW_TIMEOUT = (5.0, 120.0)
PHASES = ("queued", "started", "finished")


@dataclass(frozen=True)
class Arrival:
    """One series sent, and when its STOW was answered (wall clock, as Airflow records)."""

    series: Series
    stored_at: datetime


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20, help="series sent, one at a time")
    parser.add_argument("--slices", type=int, default=10, help="CT slices per series")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between series")
    parser.add_argument("--quiet", type=float, default=10.0, help="PACSFLOW_SERIES_QUIET_SECONDS")
    parser.add_argument("--data-dir", type=Path, help="keep/reuse the generated series here")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--run-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args(argv)
    if args.series < 2 or args.slices < 1 or args.interval < 0 or args.quiet < 0:
        parser.error("need at least 2 series, 1 slice, and no negative times")
    return args


def send(session: requests.Session, dicomweb: str, series: Series) -> datetime:
    files = [(i.sop_uid, i.path) for i in series.instances]
    outcomes = post_files(session, dicomweb, files, STOW_TIMEOUT)
    stored_at = datetime.now(UTC)
    failed = {uid: describe(o) for uid, o in outcomes.items() if o != StoreStatus.SUCCESS}
    if failed:
        raise BenchError(f"STOW of series {series.series_uid} failed: {failed}")
    return stored_at


def runs_by_series(airflow: AirflowClient) -> dict[str, dict[str, Any]]:
    runs = airflow.runs("process_series")
    return {run["conf"]["series_instance_uid"]: run for run in runs if run.get("conf")}


def wait_all_finished(
    airflow: AirflowClient, arrivals: list[Arrival], timeout_s: float
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    wanted = {a.series.series_uid for a in arrivals}
    while time.monotonic() < deadline:
        runs = runs_by_series(airflow)
        done = {uid for uid in wanted if runs.get(uid, {}).get("state") in ("success", "failed")}
        if done == wanted:
            return runs
        time.sleep(1)
    raise BenchError(f"{len(wanted - done)} runs not finished after {timeout_s:.0f} s")


def delays(arrival: Arrival, run: dict[str, Any]) -> dict[str, float]:
    if run["state"] != "success":
        raise BenchError(f"run {run['dag_run_id']} ended {run['state']}")
    stamps = {"queued": run["queued_at"], "started": run["start_date"], "finished": run["end_date"]}
    return {
        phase: (datetime.fromisoformat(stamp) - arrival.stored_at).total_seconds()
        for phase, stamp in stamps.items()
    }


def percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def print_report(args: argparse.Namespace, measured: list[dict[str, float]]) -> bool:
    target = args.quiet + STARTED_MARGIN_S
    print()
    print(f"dispatch latency, {pacsflow_version()}; {machine_description()}; load {load_average()}")
    print(
        f"{args.series} series of {args.slices} CT slices {args.size}x{args.size}, one every "
        f"{args.interval:g} s by STOW; quiet period {args.quiet:g} s; routing only"
    )
    header = f"{'last stored ->':<16} {'p50 s':>8} {'p95 s':>8} {'max s':>8}"
    print(header)
    print("-" * len(header))
    for phase in PHASES:
        samples = [m[phase] for m in measured]
        print(
            f"{'run ' + phase:<16} {percentile(samples, 50):8.2f} {percentile(samples, 95):8.2f}"
            f" {max(samples):8.2f}"
        )
    started_p95 = percentile([m["started"] for m in measured], 95)
    verdict = "PASS" if started_p95 <= target else "FAIL"
    print(
        f"\ntarget: run started within quiet + {STARTED_MARGIN_S:g} s = {target:g} s at p95; "
        f"measured {started_p95:.2f} s: {verdict}"
    )
    return verdict == "PASS"


def run(args: argparse.Namespace, workdir: Path) -> bool:
    data_dir = args.data_dir or workdir / "data"
    all_series = [
        load_series(data_dir / f"series-{i}", args.slices, seed=i + 1, size=args.size)
        for i in range(args.series + 1)  # the first warms Airflow up and is not measured
    ]
    with running_platform(
        workdir, NO_RULES, args.quiet, ("process_series",), args.startup_timeout
    ) as platform:
        dicomweb = f"{platform.web_url}/dicomweb"
        log("warming up with one series")
        warm_up = Arrival(all_series[0], send(platform.web, dicomweb, all_series[0]))
        wait_all_finished(platform.airflow, [warm_up], args.run_timeout)
        log(f"sending {args.series} series")
        arrivals = []
        for series in all_series[1:]:
            arrivals.append(Arrival(series, send(platform.web, dicomweb, series)))
            time.sleep(args.interval)
        runs = wait_all_finished(platform.airflow, arrivals, args.run_timeout)
        measured = [delays(a, runs[a.series.series_uid]) for a in arrivals]
    return print_report(args, measured)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    reason = cannot_run_reason([])
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    script = Path(__file__).resolve()

    def body(workdir: Path) -> bool:
        try:
            return run(args, workdir)
        except BenchError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return False

    return run_in_private_netns(script, argv, "pacsflow-bench-dispatch-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
