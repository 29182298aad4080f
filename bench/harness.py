"""What every pacsflow-vs-Orthanc benchmark needs: a private network namespace, server
processes that are always stopped, timings, and the report header.

Scripts in bench/ import it as ``harness`` (bench/ is on sys.path when a script in it runs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
PACSFLOW_BIN = REPO_ROOT / ".venv" / "bin" / "pacsflow"
ORTHANC_BIN = Path("/usr/sbin/Orthanc")
NETNS_MARK = "PACSFLOW_BENCH_IN_NETNS"
STOP_TIMEOUT_S = 30.0
USER = "admin"  # the same HTTP Basic account on both servers
PASSWORD = "bench-password"


class BenchError(RuntimeError):
    """A failure that makes a server's numbers meaningless (bad response, no start...)."""


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- setup


def cannot_run_reason(tools: list[str], need_pacsflow: bool = True) -> str | None:
    """Why this machine cannot run a benchmark (exit 2), or None; checks common to all."""
    if need_pacsflow and not PACSFLOW_BIN.exists():
        return f"{PACSFLOW_BIN} not found; run `uv sync` in {REPO_ROOT}"
    if os.geteuid() != 0:
        return "must run as root: the servers run in a private network namespace (unshare -n)"
    for tool in ("unshare", "ip", "nproc", *tools):
        if not shutil.which(tool):
            return f"required tool {tool!r} not found on PATH"
    return None


def raise_system_exit(signum: int, _frame: object) -> None:
    """Turn SIGTERM/SIGHUP into an exception so the servers are stopped on the way out."""
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Explicit, because a shell starting us in the background leaves SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_system_exit)
    signal.signal(signal.SIGHUP, raise_system_exit)


def enter_private_netns(script: Path, argv: list[str]) -> None:
    """Re-exec ``script`` under ``unshare -n`` (once), then bring up lo inside the namespace.

    exec (not a child) keeps this process in the foreground so Ctrl-C reaches the
    code that stops the servers.
    """
    if os.environ.get(NETNS_MARK) != "1":
        env = dict(os.environ, **{NETNS_MARK: "1"})
        log("re-executing inside a private network namespace (unshare -n)")
        os.execvpe("unshare", ["unshare", "--net", "--", sys.executable, str(script), *argv], env)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    interfaces = [
        line.split(":")[0].strip()
        for line in Path("/proc/self/net/dev").read_text().splitlines()[2:]
    ]
    if interfaces != ["lo"]:
        raise BenchError(f"expected a namespace with only 'lo', found {interfaces}")


def run_in_private_netns(
    script: Path, argv: list[str], prefix: str, keep: bool, body: Callable[[Path], bool]
) -> int:
    """Run ``body(workdir)`` in the private network namespace, with the exit codes every
    benchmark has: 0 if it reports success, 1 if not, 2 if the namespace cannot be set up,
    130 on Ctrl-C. Leftover processes and the work dir are always cleaned up."""
    install_signal_handlers()
    try:
        enter_private_netns(script, argv)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"cannot set up the private network namespace: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    log(f"work dir {workdir}")
    try:
        return 0 if body(workdir) else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        reap_namespace()
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def delete_orthanc_study(
    session: requests.Session, base_url: str, study_uid: str, timeout: tuple[float, float]
) -> None:
    """Orthanc deletes by its own ids: map the UID with /tools/lookup, then DELETE (files too)."""
    r = session.post(f"{base_url}/tools/lookup", data=study_uid, timeout=timeout)
    r.raise_for_status()
    for hit in r.json():
        if hit.get("Type") == "Study":
            session.delete(f"{base_url}/studies/{hit['ID']}", timeout=timeout).raise_for_status()


def delete_pacsflow_study(
    session: requests.Session, dicomweb_root: str, study_uid: str, timeout: tuple[float, float]
) -> None:
    """pacsflow deletes through DICOMweb itself."""
    r = session.delete(f"{dicomweb_root}/studies/{study_uid}", timeout=timeout)
    if r.status_code not in (200, 202, 204):
        raise BenchError(f"DELETE study answered HTTP {r.status_code}: {r.text[:200]}")


def write_orthanc_config(workdir: Path, http_port: int, **options: object) -> Path:
    """Orthanc's configuration file in a new ``workdir``: throwaway storage and index, HTTP
    on loopback with the bench account, then ``options``; every other option default."""
    workdir.mkdir(parents=True)
    config = {
        "Name": "pacsflow-bench",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        **options,
    }
    path = workdir / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark has: the data set, its cache, timeouts, keeping the temp dir."""
    parser.add_argument("--slices", type=int, default=400, help="slices in the CT series")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--seed", type=int, default=1, help="seed for pixels and UIDs")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep/reuse the generated series here (default: inside the temp dir)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for each server to become ready",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp dir (server logs, storage) for inspection",
    )


# --------------------------------------------------------------------------- processes


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a server log, to show why it did not come up."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def spawn(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """Own session, so we can signal the server and any workers it forks as one group."""
    log_file = log_path.open("wb")
    try:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log_file.close()


def stop_process(proc: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM the server's process group, SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftover workers of a dead leader
        return
    log(f"stopping {name} (pid {proc.pid})")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log(f"{name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; killing")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def reap_namespace() -> None:
    """Kill anything still alive in our private namespace (a server that daemonized past
    its process group); only this run can have started processes in it."""
    own_ns = os.readlink("/proc/self/ns/net")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.readlink(entry / "ns" / "net") != own_ns:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            log(f"killing leftover process {entry.name} in the bench namespace: {cmdline[:100]}")
            os.kill(int(entry.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    name: str,
    log_path: Path,
    what: str,
    timeout_s: float,
) -> None:
    """Poll ``ready`` until it is true; fail early, with the log's tail, if ``proc`` dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with code {proc.returncode} during startup; "
                f"log {log_path} (kept with --keep):\n{log_tail(log_path)}"
            )
        if ready():
            return
        time.sleep(0.2)
    raise BenchError(
        f"{name} not ready after {timeout_s:.0f}s ({what}); log {log_path} (kept with --keep):\n"
        f"{log_tail(log_path)}"
    )


def wait_http_ready(
    session: requests.Session,
    url: str,
    proc: subprocess.Popen[bytes],
    name: str,
    log_path: Path,
    timeout_s: float,
) -> None:
    """Wait until ``url`` answers 200 (the server's own health or system endpoint)."""

    def answers() -> bool:
        with contextlib.suppress(requests.RequestException):
            return session.get(url, timeout=2).status_code == 200
        return False

    wait_until(answers, proc, name, log_path, url, timeout_s)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after "pid (comm)": state is field 3, utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- measurements


@dataclass
class Timing:
    """Samples of one operation on one server, in milliseconds."""

    samples: list[float]
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)


def fmt_timing(t: Timing | None) -> str:
    return f"{t.median:10.1f} ({t.minimum:8.1f})" if t else f"{'-':>10} {'':>10}"


def settle() -> None:
    """Flush dirty pages (untimed) so writeback from the last step does not land in the next
    measurement; both servers get the same treatment."""
    os.sync()


# --------------------------------------------------------------------------- report


def machine_description() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"nproc {nproc}, {cpu}, {mem_gb:.0f} GiB RAM, Linux {platform.release()}"


def load_average() -> str:
    """Other work on the machine skews every number; the report says how much there was."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def orthanc_binary_version() -> str:
    if not ORTHANC_BIN.exists():
        return "not installed"
    r = subprocess.run([str(ORTHANC_BIN), "--version"], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0] if (r.stdout or r.stderr) else "?"


def pacsflow_version() -> str:
    """Git commit (+dirty) and package version; the tree changes fast during development."""

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "no commit yet"
    dirty = " (dirty tree)" if git("status", "--porcelain") else ""
    try:
        package = importlib.metadata.version("pacsflow")
    except importlib.metadata.PackageNotFoundError:
        package = "?"
    return f"pacsflow {package}, git {commit}{dirty}"


def print_ratio_table(
    label: str,
    rows: list[tuple[str, Timing | None, Timing | None, float]],
    errors: dict[str, str],
    rate: Callable[[Timing | None], str] | None = None,
) -> bool:
    """The report's verdict: per row (name, pacsflow, Orthanc, target) both medians, their
    ratio and PASS/FAIL (- when a side is missing), optionally a rate column per side; then
    the servers' errors. True when nothing failed."""
    rate_head = f" {'inst/s':>8}" if rate else ""
    header = (
        f"{label:<16} {'pacsflow ms (min)':>21}{rate_head} {'Orthanc ms (min)':>21}{rate_head} "
        f"{'ratio':>7} {'target':>7}  result"
    )
    print(header)
    print("-" * len(header))
    all_pass = True
    for name, p, o, target in rows:
        if p and o:
            ratio = p.median / o.median
            ratio_s, verdict = f"{ratio:7.2f}", "PASS" if ratio <= target else "FAIL"
        else:
            ratio_s, verdict = f"{'-':>7}", "-"
        all_pass &= verdict != "FAIL"
        p_rate, o_rate = (f" {rate(p)}", f" {rate(o)}") if rate else ("", "")
        print(
            f"{name:<16} {fmt_timing(p):>21}{p_rate} {fmt_timing(o):>21}{o_rate} {ratio_s} "
            f"{'<= ' + format(target, '.1f'):>7}  {verdict}"
        )
    for name, message in errors.items():
        print(f"\nERROR ({name}): {message}")
    return all_pass and not errors
