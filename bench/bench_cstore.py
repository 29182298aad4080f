#!/usr/bin/env python3
"""Compare how fast pacsflow's DICOM receiver and Orthanc 1.10 take in a CT series by C-STORE.

dcmtk's storescu sends the same 400 synthetic CT slices to each server, over one
association and over four parallel ones; the time until every storescu has exited is
compared as a ratio pacsflow / Orthanc. Run as root: the script re-executes itself inside a
private network namespace (``unshare -n``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from ct_series import Series, load_series
from harness import (
    ORTHANC_BIN,
    PACSFLOW_BIN,
    PASSWORD,
    REPO_ROOT,
    USER,
    BenchError,
    Timing,
    add_common_arguments,
    cannot_run_reason,
    cpu_seconds,
    delete_orthanc_study,
    delete_pacsflow_study,
    load_average,
    log,
    machine_description,
    orthanc_binary_version,
    pacsflow_version,
    print_ratio_table,
    run_in_private_netns,
    settle,
    spawn,
    stop_process,
    wait_http_ready,
    wait_until,
    write_orthanc_config,
)

STORESCU = "storescu"
ECHOSCU = "echoscu"
INSTALL_HINTS = {
    STORESCU: "scripts/install-test-tools.sh (Debian package dcmtk)",
    ECHOSCU: "scripts/install-test-tools.sh (Debian package dcmtk)",
}
PROFILER = Path(__file__).resolve().with_name("profile_receiver.py")
CALLING_AE = "BENCHSCU"
ORTHANC_AE = "ORTHANC"
PACSFLOW_AE = "PACSFLOW"
DICOM_JSON = "application/dicom+json"
SOP_INSTANCE_UID = "00080018"
HTTP_TIMEOUT = (10.0, 120.0)
SEND_TIMEOUT_S = 900.0
INDEX_LAG_TIMEOUT_S = 30.0
# TCP_NODELAY=1 is read by dcmtk (storescu, and Orthanc, which links the system dcmtk):
# since dcmtk 3.6.2 Nagle's algorithm stays on unless it is set.
SENDER_ENV = {"TCP_NODELAY": "1"}
# mode -> parallel associations (storescu processes), each sending an equal share
MODES: dict[str, int] = {"1 association": 1, "4 associations": 4}
# mode -> highest acceptable ratio pacsflow/Orthanc (medians of the wall time)
TARGETS: dict[str, float] = dict.fromkeys(MODES, 1.0)
# Orthanc settings that decide how much work a C-STORE is; the report shows their defaults
ORTHANC_REPORTED_DEFAULTS = (
    "SyncStorageArea",
    "StorageCompression",
    "StoreMD5ForAttachments",
    "OverwriteInstances",
    "DicomThreadsCount",
    "MaximumPduLength",
)
# What pacsflow has forced to disk when it answers (pacsflow/archive/storage.py and db.py,
# checked with strace when this was written); it is code, not a setting.
PACSFLOW_DURABILITY = (
    "every stored file fsync'd, then its series directory (and the study directory and "
    "storage root when they were just made), before the index commit; SQLite index WAL with "
    "synchronous=FULL (each commit fsync'd); the C-STORE response is sent after both"
)


# --------------------------------------------------------------------------- servers


@dataclass
class StoreServer:
    """A running C-STORE SCP under test, and the REST/DICOMweb side used to check and empty it."""

    name: str
    ae_title: str
    dicom_port: int
    base_url: str
    receiver: subprocess.Popen[bytes]  # the process that receives (its CPU time is reported)
    log_path: Path
    config_note: str
    durability_note: str
    version: str = "?"
    session: requests.Session = field(default_factory=requests.Session)

    def stored_sop_uids(self) -> list[str]:
        """SOP Instance UIDs of every instance the server holds (not just our study)."""
        raise NotImplementedError

    def delete_study(self, study_uid: str) -> None:
        """Remove the study, files included, so the next run stores into an empty archive."""
        raise NotImplementedError

    def get_json(
        self, path: str, params: dict[str, str] | None = None, accept: str = "application/json"
    ) -> Any:
        r = self.session.get(
            f"{self.base_url}{path}",
            params=params,
            headers={"Accept": accept},
            timeout=HTTP_TIMEOUT,
        )
        if r.status_code != 200:
            raise BenchError(
                f"{self.name} GET {path} answered HTTP {r.status_code}: {r.text[:200]}"
            )
        return r.json()


class OrthancServer(StoreServer):
    def stored_sop_uids(self) -> list[str]:
        instances = self.get_json("/instances", params={"expand": ""})
        return [i["MainDicomTags"].get("SOPInstanceUID", "") for i in instances]

    def delete_study(self, study_uid: str) -> None:
        delete_orthanc_study(self.session, self.base_url, study_uid, HTTP_TIMEOUT)


class PacsflowServer(StoreServer):
    def stored_sop_uids(self) -> list[str]:
        """QIDO-RS over all instances (up to pacsflow's 10,000-result page; we hold 400)."""
        matches = self.get_json(
            "/dicomweb/instances", params={"includefield": SOP_INSTANCE_UID}, accept=DICOM_JSON
        )
        return [m.get(SOP_INSTANCE_UID, {}).get("Value", [""])[0] for m in matches]

    def delete_study(self, study_uid: str) -> None:
        delete_pacsflow_study(self.session, f"{self.base_url}/dicomweb", study_uid, HTTP_TIMEOUT)


def echo_ok(ae_title: str, port: int) -> bool:
    """A C-ECHO answered: the DICOM side is listening and accepts our calling AE."""
    cmd = [ECHOSCU, "-aet", CALLING_AE, "-aec", ae_title, "127.0.0.1", str(port)]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=10, env={**os.environ, **SENDER_ENV})
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def strip_json_comments(text: str) -> str:
    """Orthanc's configuration is JSON with // and /* */ comments; only whole-line ones."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def orthanc_defaults(workdir: Path) -> dict[str, object]:
    """What this Orthanc build uses when the option is not set (`Orthanc --config=FILE`)."""
    path = workdir / "orthanc-defaults.json"
    subprocess.run([str(ORTHANC_BIN), f"--config={path}"], capture_output=True, check=False)
    try:
        defaults = json.loads(strip_json_comments(path.read_text()))
    except (OSError, ValueError) as exc:
        log(f"cannot read Orthanc's default configuration ({exc}); report shows '?'")
        return {}
    assert isinstance(defaults, dict)
    return defaults


@contextlib.contextmanager
def running_orthanc(
    workdir: Path, http_port: int, dicom_port: int, startup_timeout: float
) -> Iterator[StoreServer]:
    """Orthanc with throwaway storage and index, no AE checks, and every other option default."""
    config_path = write_orthanc_config(
        workdir,
        http_port,
        DicomServerEnabled=True,
        DicomAet=ORTHANC_AE,
        DicomPort=dicom_port,
        DicomCheckCalledAet=False,
        DicomAlwaysAllowStore=True,
        Plugins=[],
    )
    defaults = orthanc_defaults(workdir)
    shown = ", ".join(
        f"{key}={json.dumps(defaults.get(key, '?'))}" for key in ORTHANC_REPORTED_DEFAULTS
    )
    env = {**os.environ, **SENDER_ENV}
    base = f"http://127.0.0.1:{http_port}"
    log_path = workdir / "orthanc.log"
    log(f"starting Orthanc (DICOM {ORTHANC_AE}@127.0.0.1:{dicom_port}, config {config_path})")
    proc = spawn([str(ORTHANC_BIN), str(config_path)], env, workdir, log_path)
    server = OrthancServer(
        "Orthanc",
        ORTHANC_AE,
        dicom_port,
        base,
        proc,
        log_path,
        config_note=(
            f"DicomCheckCalledAet=false, DicomAlwaysAllowStore=true, no plugins; defaults: {shown}"
        ),
        durability_note=(
            "SyncStorageArea: each stored file fdatasync'd (no directory fsync); SQLite index "
            "WAL with synchronous=NORMAL (commits not fsync'd; durable at checkpoint)"
        ),
    )
    server.session.auth = (USER, PASSWORD)
    try:
        wait_http_ready(
            server.session, f"{base}/system", proc, "Orthanc", log_path, startup_timeout
        )
        wait_until(
            lambda: echo_ok(ORTHANC_AE, dicom_port),
            proc,
            "Orthanc",
            log_path,
            f"C-ECHO to port {dicom_port}",
            startup_timeout,
        )
        system = server.get_json("/system")
        server.version = f"Orthanc {system.get('Version')} (REST /system)"
        yield server
    finally:
        server.session.close()
        stop_process(proc, "Orthanc")


@contextlib.contextmanager
def running_pacsflow(
    workdir: Path,
    http_port: int,
    dicom_port: int,
    startup_timeout: float,
    profile: Path | None,
    steps: Path | None,
) -> Iterator[StoreServer]:
    """`pacsflow web` (to count and delete), then `pacsflow receiver`, on a fresh PACSFLOW_HOME.

    Started one after the other, as `pacsflow up` would run them, so that only one of them
    migrates the new index. With ``profile`` the receiver runs under cProfile in every
    thread (bench/profile_receiver.py) and writes its stats there when stopped; with
    ``steps`` it times the steps of each C-STORE and writes ms per C-STORE there.
    """
    home = workdir / "home"
    home.mkdir(parents=True)
    env = {
        **os.environ,
        **SENDER_ENV,
        "PACSFLOW_HOME": str(home),
        "PACSFLOW_HTTP_PORT": str(http_port),
        "PACSFLOW_DICOM_PORT": str(dicom_port),
        "PACSFLOW_AE_TITLE": PACSFLOW_AE,
        "PACSFLOW_ADMIN_PASSWORD": PASSWORD,
        "PACSFLOW_DICOM_ACCEPT_ALL_CALLING_AES": "true",
    }
    base = f"http://127.0.0.1:{http_port}"
    with contextlib.ExitStack() as stack:
        web_log = workdir / "pacsflow-web.log"
        log(f"starting pacsflow web on {base} (PACSFLOW_HOME={home})")
        web = spawn([str(PACSFLOW_BIN), "web"], env, REPO_ROOT, web_log)
        stack.callback(stop_process, web, "pacsflow web")
        session = requests.Session()
        session.auth = (USER, PASSWORD)
        stack.callback(session.close)
        wait_http_ready(session, f"{base}/health", web, "pacsflow web", web_log, startup_timeout)

        receiver_log = workdir / "pacsflow-receiver.log"
        instrumented = [f"--stats={profile}"] if profile else []
        instrumented += [f"--steps={steps}"] if steps else []
        if instrumented:
            cmd = [sys.executable, str(PROFILER), *instrumented]
        else:
            cmd = [str(PACSFLOW_BIN), "receiver"]
        log(f"starting pacsflow receiver (DICOM {PACSFLOW_AE}@127.0.0.1:{dicom_port}): {cmd}")
        receiver = spawn(cmd, env, REPO_ROOT, receiver_log)
        stack.callback(stop_process, receiver, "pacsflow receiver")
        wait_until(
            lambda: echo_ok(PACSFLOW_AE, dicom_port),
            receiver,
            "pacsflow receiver",
            receiver_log,
            f"C-ECHO to port {dicom_port}",
            startup_timeout,
        )
        yield PacsflowServer(
            "pacsflow",
            PACSFLOW_AE,
            dicom_port,
            base,
            receiver,
            receiver_log,
            config_note=(
                "`pacsflow receiver` + `pacsflow web`, default settings, fresh home, "
                "PACSFLOW_DICOM_ACCEPT_ALL_CALLING_AES=true"
                + (f"; PROFILED with cProfile into {profile}" if profile else "")
                + (f"; C-STORE steps timed into {steps}" if steps else "")
            ),
            durability_note=PACSFLOW_DURABILITY,
            version=pacsflow_version(),
            session=session,
        )


# --------------------------------------------------------------------------- measurements


@dataclass
class ModeResult:
    """Wall time of every timed run of one mode on one server, and the server's CPU time."""

    wall: Timing
    server_cpu_ms: list[float] = field(default_factory=list)


def split(series: Series, associations: int) -> list[list[Path]]:
    """Equal consecutive shares of the series, one per storescu process."""
    files = [i.path for i in series.instances]
    share = -(-len(files) // associations)
    return [files[k : k + share] for k in range(0, len(files), share)]


def storescu_problems(output: str) -> list[str]:
    """At its default verbosity storescu prints only warnings (W:), errors (E:), fatals (F:)."""
    return [line for line in output.splitlines() if line.startswith(("E:", "F:", "W:"))]


def send(server: StoreServer, shares: list[list[Path]], logdir: Path) -> float:
    """Start one storescu per share together; the wall time until all exit, in ms."""
    env = {**os.environ, **SENDER_ENV}
    commands = [
        [
            STORESCU,
            "-aet",
            CALLING_AE,
            "-aec",
            server.ae_title,
            "127.0.0.1",
            str(server.dicom_port),
            *map(str, share),
        ]
        for share in shares
    ]
    logs = [logdir / f"storescu-{k}.log" for k in range(len(commands))]
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.perf_counter()
    try:
        for cmd, log_path in zip(commands, logs, strict=True):
            with log_path.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                    )
                )
        deadline = t0 + SEND_TIMEOUT_S
        for proc in procs:
            proc.wait(timeout=max(0.1, deadline - time.perf_counter()))
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"storescu to {server.name} still running after {SEND_TIMEOUT_S:.0f}s"
        ) from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log_path in zip(procs, logs, strict=True):
        output = log_path.read_text(errors="replace")
        if proc.returncode != 0:
            raise BenchError(
                f"storescu to {server.name} exited with {proc.returncode}:\n{output[-2000:]}"
            )
        if problems := storescu_problems(output):
            raise BenchError(f"storescu to {server.name} reported:\n" + "\n".join(problems[:20]))
    return elapsed_ms


def wait_holding(server: StoreServer, expected: set[str], timeout_s: float) -> float | None:
    """Wait until the server holds exactly ``expected``.

    Returns None if it did at the first look (every C-STORE was indexed before its response),
    else how many seconds later it did.
    """
    t0 = time.monotonic()
    first = True
    while True:
        held = server.stored_sop_uids()
        if len(held) == len(expected) and set(held) == expected:
            return None if first else time.monotonic() - t0
        first = False
        if time.monotonic() - t0 > timeout_s:
            missing = len(expected - set(held))
            raise BenchError(
                f"{server.name} holds {len(held)} instances ({missing} of the expected "
                f"{len(expected)} missing) {timeout_s:.0f}s after storescu exited"
            )
        time.sleep(0.1)


def empty(server: StoreServer, series: Series) -> None:
    """Delete the study and check the archive is empty again (untimed)."""
    server.delete_study(series.study_uid)
    if held := server.stored_sop_uids():
        raise BenchError(f"{server.name} still holds {len(held)} instances after DELETE")


def store_and_check(
    server: StoreServer, series: Series, associations: int, logdir: Path
) -> tuple[float, float]:
    """One run into an empty server: (wall ms, server CPU ms), checked to hold the series."""
    expected = {i.sop_uid for i in series.instances}
    if held := server.stored_sop_uids():
        raise BenchError(f"{server.name} is not empty before a run: it holds {len(held)}")
    settle()
    cpu_before = cpu_seconds(server.receiver.pid)
    wall_ms = send(server, split(series, associations), logdir)
    cpu_ms = (cpu_seconds(server.receiver.pid) - cpu_before) * 1000.0
    if server.receiver.poll() is not None:
        raise BenchError(f"{server.name} exited (code {server.receiver.returncode}) during a run")
    lag = wait_holding(server, expected, INDEX_LAG_TIMEOUT_S)
    if lag is not None:
        log(f"{server.name}: not all instances listed when storescu exited; {lag:.2f}s later")
    return wall_ms, cpu_ms


def benchmark_server(
    server: StoreServer,
    series: Series,
    modes: dict[str, int],
    repeat: int,
    warmup: int,
    logdir: Path,
) -> dict[str, ModeResult]:
    """Untimed warm-up runs, then `repeat` rounds of every mode, the modes interleaved."""
    logdir.mkdir(parents=True, exist_ok=True)
    for k in range(warmup):
        ms, _ = store_and_check(server, series, 1, logdir)
        log(f"{server.name} warm-up #{k + 1} (1 association, untimed): {ms:.0f} ms")
        empty(server, series)
    results = {mode: ModeResult(Timing([])) for mode in modes}
    for k in range(repeat):
        for mode, associations in modes.items():
            wall_ms, cpu_ms = store_and_check(server, series, associations, logdir)
            empty(server, series)
            results[mode].wall.samples.append(wall_ms)
            results[mode].server_cpu_ms.append(cpu_ms)
            log(
                f"{server.name} {mode} #{k + 1}: {wall_ms:.0f} ms "
                f"({len(series.instances) / wall_ms * 1000:.1f} instances/s, "
                f"server CPU {cpu_ms:.0f} ms)"
            )
    return results


# --------------------------------------------------------------------------- report


def storescu_version() -> str:
    r = subprocess.run([STORESCU, "--version"], capture_output=True, text=True)
    first = (r.stdout or r.stderr).strip().splitlines()
    return first[0].strip("$ ").strip() if first else "?"


def per_second(count: int, t: Timing | None) -> str:
    return f"{count / t.median * 1000:8.1f}" if t else f"{'-':>8}"


def print_report(
    results: dict[str, dict[str, ModeResult]],
    servers: dict[str, StoreServer],
    errors: dict[str, str],
    args: argparse.Namespace,
    series: Series,
    load_before: str,
) -> bool:
    """Print the comparison table on stdout; True if every evaluated target passed."""
    n = len(series.instances)
    print()
    print("pacsflow vs Orthanc C-STORE benchmark")
    print(f"  machine : {machine_description()}")
    print(f"            load average before the run {load_before}, after {load_average()}")
    print(
        f"  Orthanc : {orthanc_binary_version()}"
        + (f"; {servers['Orthanc'].version}" if "Orthanc" in servers else "")
    )
    for name in ("Orthanc", "pacsflow"):
        if server := servers.get(name):
            if name == "pacsflow":
                print(f"  pacsflow: {server.version}")
            print(f"            config: {server.config_note}")
            print(f"            durability: {server.durability_note}")
    if "pacsflow" not in servers:
        print(f"  pacsflow: {pacsflow_version()}")
    print(
        f"  sender  : {storescu_version()}, default options, TCP_NODELAY=1 in the environment "
        f"of storescu and of both servers; calling AE {CALLING_AE}"
    )
    print(
        f"  data    : {n} CT slices {args.size}x{args.size} int16, Explicit VR LE, "
        f"{series.total_bytes / 1e6:.1f} MB, seed {args.seed}"
    )
    print(
        f"  method  : servers run one at a time in a private netns over loopback; "
        f"{args.warmup} untimed warm-up run(s), then {args.repeat} round(s) of each mode; "
        "each run stores into an empty archive (study deleted and `sync` before it); "
        "wall time from starting the storescu process(es) until all exited; median (min) ms"
    )
    for name, server_results in results.items():
        print(f"  checks on {name}:")
        for mode, result in server_results.items():
            cpu = Timing(result.server_cpu_ms) if result.server_cpu_ms else None
            cpu_s = f"{cpu.median:.0f} ms" if cpu else "-"
            print(
                f"    {mode:<15} {len(result.wall.samples)} runs, each: storescu exit 0, server "
                f"then held exactly the {n} SOP Instance UIDs; server CPU per run (median) {cpu_s}"
            )
    print()
    rows = []
    for mode in args.modes:
        target = TARGETS[mode]
        p_result = results.get("pacsflow", {}).get(mode)
        o_result = results.get("Orthanc", {}).get(mode)
        p = p_result.wall if p_result else None
        o = o_result.wall if o_result else None
        rows.append((mode, p, o, target))
    return print_ratio_table("mode", rows, errors, rate=lambda t: per_second(n, t))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="C-STORE throughput of pacsflow's receiver vs Orthanc 1.10, sent by "
        "dcmtk storescu (run as root; see README)."
    )
    parser.add_argument(
        "--only", choices=["orthanc", "pacsflow"], help="benchmark one server only (no ratios)"
    )
    parser.add_argument(
        "--mode",
        choices=list(MODES),
        action="append",
        help="measure only this mode (repeatable; default: all)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per mode")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs (1 association) before timing"
    )
    parser.add_argument("--orthanc-http-port", type=int, default=8042)
    parser.add_argument("--orthanc-dicom-port", type=int, default=4242)
    parser.add_argument("--pacsflow-http-port", type=int, default=8000)
    parser.add_argument("--pacsflow-dicom-port", type=int, default=11112)
    parser.add_argument(
        "--profile-receiver",
        type=Path,
        metavar="FILE",
        help="run pacsflow's receiver under cProfile (all threads) and write the stats to "
        "FILE; slows it down, so its numbers are not comparable",
    )
    parser.add_argument(
        "--receiver-steps",
        type=Path,
        metavar="FILE",
        help="time the steps of each C-STORE in pacsflow's receiver and write ms per C-STORE "
        "to FILE when it stops (cheap timers: the run stays comparable)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.slices < 1 or args.warmup < 0:
        parser.error("--repeat and --slices must be positive, --warmup not negative")
    if args.slices < max(MODES.values()):
        parser.error(f"--slices must be at least {max(MODES.values())} (one per association)")
    args.modes = {mode: MODES[mode] for mode in args.mode or MODES}
    if args.profile_receiver:
        args.profile_receiver = args.profile_receiver.resolve()
    if args.receiver_steps:
        args.receiver_steps = args.receiver_steps.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    wanted = [args.only] if args.only else ["orthanc", "pacsflow"]

    if "orthanc" in wanted and not ORTHANC_BIN.exists():
        print(
            f"Orthanc is not installed (missing {ORTHANC_BIN}); run bench/install-orthanc.sh",
            file=sys.stderr,
        )
        return 2
    for tool in (STORESCU, ECHOSCU):
        if not shutil.which(tool):
            print(f"{tool} not found; install it with {INSTALL_HINTS[tool]}", file=sys.stderr)
            return 2
    if reason := cannot_run_reason([], need_pacsflow="pacsflow" in wanted):
        print(reason, file=sys.stderr)
        return 2

    load_before = load_average()

    def run(workdir: Path) -> bool:
        results: dict[str, dict[str, ModeResult]] = {}
        servers: dict[str, StoreServer] = {}
        errors: dict[str, str] = {}
        series = load_series(args.data_dir or workdir / "data", args.slices, args.seed, args.size)
        for name in wanted:
            try:
                context = (
                    running_orthanc(
                        workdir / "orthanc",
                        args.orthanc_http_port,
                        args.orthanc_dicom_port,
                        args.startup_timeout,
                    )
                    if name == "orthanc"
                    else running_pacsflow(
                        workdir / "pacsflow",
                        args.pacsflow_http_port,
                        args.pacsflow_dicom_port,
                        args.startup_timeout,
                        args.profile_receiver,
                        args.receiver_steps,
                    )
                )
                with context as server:
                    servers[server.name] = server
                    results[server.name] = benchmark_server(
                        server,
                        series,
                        args.modes,
                        args.repeat,
                        args.warmup,
                        workdir / f"{name}-storescu",
                    )
            except (BenchError, requests.RequestException) as exc:
                log(f"{name} failed: {exc}")
                errors[name] = str(exc)
        return print_report(results, servers, errors, args, series, load_before)

    script = Path(__file__).resolve()
    return run_in_private_netns(script, argv, "pacsflow-bench-cstore-", args.keep, run)


if __name__ == "__main__":
    sys.exit(main())
