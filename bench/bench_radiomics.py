#!/usr/bin/env python3
"""How soon radiomics results exist after a segmentation arrives: RTSTRUCT stored -> SR stored.

Runs the whole platform (`pacsflow up`) with the shipped routing rules in a private network
namespace (run as root). Each round stores the IBSI CT phantom (60 slices) by STOW, waits
until the image series' own `process_series` run is over, then stores its RTSTRUCT and
times until the TID 1500 SR is in the archive (QIDO, polled every 0.2 s). Between rounds the
study is deleted, so every round computes afresh. The time beyond the quiet period (the
dispatcher waits that long by design) is compared with the target: under 30 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import requests
from harness import (
    REPO_ROOT,
    BenchError,
    cannot_run_reason,
    delete_pacsflow_study,
    load_average,
    log,
    machine_description,
    pacsflow_version,
    run_in_private_netns,
)
from platform_up import Platform, running_platform

from pacsflow.dicom.status import StoreStatus
from pacsflow.operators.report import describe
from pacsflow.operators.stow import post_files

PHANTOM = REPO_ROOT.parent / "shared" / "data" / "ibsi-ct-phantom"
SHIPPED_RULES = (REPO_ROOT / "pacsflow" / "routing" / "default_rules.yaml").read_text()
TARGET_BEYOND_QUIET_S = 30.0
TIMEOUT = (5.0, 120.0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, after a warm-up")
    parser.add_argument("--quiet", type=float, default=10.0, help="PACSFLOW_SERIES_QUIET_SECONDS")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--round-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.quiet < 0:
        parser.error("need at least one round and a quiet period of 0 s or more")
    return args


def stow(platform: Platform, paths: list[Path]) -> None:
    files = [(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID), p) for p in paths]
    outcomes = post_files(platform.web, f"{platform.web_url}/dicomweb", files, TIMEOUT)
    failed = {uid: describe(o) for uid, o in outcomes.items() if o != StoreStatus.SUCCESS}
    if failed:
        raise BenchError(f"STOW failed: {failed}")


def wait_for(what: str, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(0.2)


def has_sr(platform: Platform, study_uid: str) -> bool:
    url = f"{platform.web_url}/dicomweb/studies/{study_uid}/instances"
    answer = platform.web.get(url, params={"Modality": "SR"}, timeout=TIMEOUT)
    return answer.status_code == 200 and bool(answer.json())


def images_processed(platform: Platform, series_uid: str) -> bool:
    runs = platform.airflow.runs("process_series")
    mine = [r for r in runs if (r.get("conf") or {}).get("series_instance_uid") == series_uid]
    return bool(mine) and all(r["state"] in ("success", "failed") for r in mine)


def one_round(platform: Platform, args: argparse.Namespace) -> float:
    """Seconds from the RTSTRUCT's STOW answer to its SR being found."""
    images = sorted((PHANTOM / "image").glob("*.dcm"))
    (rtstruct,) = sorted((PHANTOM / "rtstruct").glob("*.dcm"))
    image = pydicom.dcmread(images[0], stop_before_pixels=True)
    stow(platform, images)
    wait_for(
        "the image series' process_series run",
        lambda: images_processed(platform, image.SeriesInstanceUID),
        args.round_timeout,
    )
    stow(platform, [rtstruct])
    stored = time.monotonic()
    wait_for("the SR", lambda: has_sr(platform, image.StudyInstanceUID), args.round_timeout)
    elapsed = time.monotonic() - stored
    delete_pacsflow_study(
        platform.web, f"{platform.web_url}/dicomweb", image.StudyInstanceUID, TIMEOUT
    )
    return elapsed


def print_report(args: argparse.Namespace, samples: list[float]) -> bool:
    beyond = [s - args.quiet for s in samples]
    print()
    print(f"radiomics latency, {pacsflow_version()}; {machine_description()}")
    print(f"load {load_average()}")
    print(
        f"IBSI CT phantom (60 slices) then its RTSTRUCT (GTV-1) by STOW; quiet period "
        f"{args.quiet:g} s; shipped rules and default parameter set; {args.rounds} rounds"
    )
    print("RTSTRUCT stored -> SR stored, s: " + ", ".join(f"{s:.1f}" for s in samples))
    median = statistics.median(beyond)
    verdict = "PASS" if max(beyond) < TARGET_BEYOND_QUIET_S else "FAIL"
    print(
        f"beyond the quiet period: median {median:.1f} s, max {max(beyond):.1f} s; "
        f"target under {TARGET_BEYOND_QUIET_S:g} s: {verdict}"
    )
    return verdict == "PASS"


def run(args: argparse.Namespace, workdir: Path) -> bool:
    dags = ("process_series", "radiomics")
    with running_platform(workdir, SHIPPED_RULES, args.quiet, dags, args.startup_timeout) as p:
        log("warm-up round (not timed)")
        one_round(p, args)
        samples = []
        for number in range(args.rounds):
            samples.append(one_round(p, args))
            log(f"round {number + 1}: {samples[-1]:.1f} s")
    return print_report(args, samples)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    reason = cannot_run_reason([]) or (None if PHANTOM.is_dir() else f"{PHANTOM} not found")
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2

    def body(workdir: Path) -> bool:
        try:
            return run(args, workdir)
        except (BenchError, requests.RequestException) as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return False

    script = Path(__file__).resolve()
    return run_in_private_netns(script, argv, "pacsflow-bench-radiomics-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
