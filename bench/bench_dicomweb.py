#!/usr/bin/env python3
"""Compare pacsflow's DICOMweb latency with Orthanc 1.10 on the same synthetic CT series.

Run as root: the script re-executes itself inside a private network namespace
(``unshare -n``) so both servers listen only on a loopback nobody else can reach,
and the client shares that loopback. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
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
    delete_orthanc_study,
    delete_pacsflow_study,
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
    write_orthanc_config,
)

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_CMD = "apt-get install -y orthanc orthanc-dicomweb"
DICOM_JSON = "application/dicom+json"
RETRIEVE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
HTTP_TIMEOUT = (10.0, 600.0)
READ_CHUNK = 1 << 20
# operation name -> highest acceptable ratio pacsflow/Orthanc (medians)
TARGETS: dict[str, float] = {
    "stow": 1.0,
    "qido-studies": 1.0,
    "series-metadata": 0.5,
    "series-retrieve": 1.0,
    "rendered-frame": 1.0,
}


# --------------------------------------------------------------------------- setup checks


def missing_orthanc_files() -> list[Path]:
    """Orthanc and its DICOMweb plugin come from Debian packages, not from the venv."""
    return [p for p in (ORTHANC_BIN, DICOMWEB_PLUGIN) if not p.exists()]


# --------------------------------------------------------------------------- test data


@dataclass(frozen=True)
class StowBody:
    """One prebuilt multipart/related request, so body assembly is not timed."""

    content_type: str
    data: bytes
    count: int


def build_stow_bodies(series: Series, batch: int) -> list[StowBody]:
    """Split the series into identical batches for both servers."""
    bodies = []
    for start in range(0, len(series.instances), batch):
        chunk = series.instances[start : start + batch]
        boundary = f"pacsflow-bench-{secrets.token_hex(16)}"
        parts = []
        for instance in chunk:
            parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            parts.append(instance.path.read_bytes())
            parts.append(b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        bodies.append(StowBody(content_type, b"".join(parts), len(chunk)))
    return bodies


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A running server under test: its DICOMweb root, its process, and how to reset it."""

    name: str
    base_url: str
    dicomweb_root: str
    process: subprocess.Popen[bytes]
    log_path: Path
    config_note: str
    version: str = "?"
    session: requests.Session = field(default_factory=requests.Session)

    def delete_study(self, study_uid: str) -> None:
        """Remove the study so the next STOW repeat stores into an empty archive."""
        raise NotImplementedError


class OrthancServer(Server):
    def delete_study(self, study_uid: str) -> None:
        """Orthanc's DICOMweb has no DELETE: through its REST API."""
        delete_orthanc_study(self.session, self.base_url, study_uid, HTTP_TIMEOUT)


class PacsflowServer(Server):
    def delete_study(self, study_uid: str) -> None:
        delete_pacsflow_study(self.session, self.dicomweb_root, study_uid, HTTP_TIMEOUT)


def wait_ready(server: Server, url: str, timeout_s: float) -> None:
    """Poll until the server answers 200 or its process dies."""
    wait_http_ready(server.session, url, server.process, server.name, server.log_path, timeout_s)


@contextlib.contextmanager
def running_orthanc(
    workdir: Path, port: int, series_metadata: str, startup_timeout: float
) -> Iterator[Server]:
    """Orthanc with a throwaway storage dir, DICOMweb plugin, and the same auth as pacsflow."""
    config_path = write_orthanc_config(
        workdir,
        port,
        StorageCompression=False,
        DicomServerEnabled=False,
        KeepAlive=True,
        TcpNoDelay=True,
        SaveJobs=False,
        Plugins=[str(DICOMWEB_PLUGIN)],
        DicomWeb={
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": False,
            "Ssl": False,
            "SeriesMetadata": series_metadata,
        },
    )
    env = dict(os.environ, TCP_NODELAY="1")
    base = f"http://127.0.0.1:{port}"
    log(f"starting Orthanc on {base} (config {config_path})")
    proc = spawn([str(ORTHANC_BIN), str(config_path)], env, workdir, workdir / "orthanc.log")
    note = (
        f"DicomWeb.SeriesMetadata={series_metadata}"
        f"{' (plugin default: reads every file)' if series_metadata == 'Full' else ''}, "
        "StorageCompression=false, TcpNoDelay=true, KeepAlive=true, HttpThreadsCount=50 "
        "(default), MaximumStorageCacheSize=128MB (default), SQLite index"
    )
    server = OrthancServer(
        "Orthanc", base, f"{base}/dicom-web", proc, workdir / "orthanc.log", note
    )
    server.session.auth = (USER, PASSWORD)
    try:
        wait_ready(server, f"{base}/system", startup_timeout)
        plugin = server.session.get(f"{base}/plugins/dicom-web", timeout=HTTP_TIMEOUT)
        if plugin.status_code != 200:
            raise BenchError("Orthanc is up but the dicom-web plugin is not loaded")
        orthanc_version = server.session.get(f"{base}/system", timeout=HTTP_TIMEOUT).json()
        server.version = (
            f"Orthanc {orthanc_version.get('Version')}, "
            f"DICOMweb plugin {plugin.json().get('Version')}"
        )
        yield server
    finally:
        server.session.close()
        stop_process(proc, "Orthanc")


@contextlib.contextmanager
def running_pacsflow(workdir: Path, port: int, startup_timeout: float) -> Iterator[Server]:
    """`pacsflow web` from the repo root with a fresh PACSFLOW_HOME.

    The web server alone, not `pacsflow up`: Airflow's processes would share the CPUs
    with it while Orthanc runs alone.
    """
    home = workdir / "home"
    home.mkdir(parents=True)
    env = dict(
        os.environ,
        PACSFLOW_HOME=str(home),
        PACSFLOW_HTTP_PORT=str(port),
        PACSFLOW_ADMIN_PASSWORD=PASSWORD,
        TCP_NODELAY="1",
    )
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / "pacsflow.log"
    log(f"starting pacsflow on {base} (PACSFLOW_HOME={home})")
    proc = spawn([str(PACSFLOW_BIN), "web"], env, REPO_ROOT, log_path)
    server = PacsflowServer(
        "pacsflow", base, f"{base}/dicomweb", proc, log_path, "default settings, fresh home"
    )
    server.session.auth = (USER, PASSWORD)
    server.version = pacsflow_version()
    try:
        wait_ready(server, f"{base}/health", startup_timeout)
        yield server
    finally:
        server.session.close()
        stop_process(proc, "pacsflow")


# --------------------------------------------------------------------------- measurements


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call in ms."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def qido_study(server: Server, params: dict[str, str]) -> list[dict[str, Any]]:
    """QIDO-RS /studies; 204 and [] both mean no match."""
    r = server.session.get(
        f"{server.dicomweb_root}/studies",
        params=params,
        headers={"Accept": DICOM_JSON},
        timeout=HTTP_TIMEOUT,
    )
    if r.status_code == 204 or (r.status_code == 200 and not r.content.strip()):
        return []
    if r.status_code != 200:
        raise BenchError(f"{server.name} QIDO answered HTTP {r.status_code}: {r.text[:200]}")
    matches: list[dict[str, Any]] = r.json()
    return matches


def wait_study_state(server: Server, study_uid: str, present: bool, timeout_s: float) -> float:
    """Wait until QIDO agrees the study is (or is not) there; returns the wait in s."""
    t0 = time.monotonic()
    while True:
        if bool(qido_study(server, {"StudyInstanceUID": study_uid})) == present:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            state = "present" if present else "absent"
            raise BenchError(f"{server.name}: study not {state} after {timeout_s:.0f}s")
        time.sleep(0.1)


def stow_all(server: Server, bodies: list[StowBody]) -> None:
    """POST every batch; any failure or FailedSOPSequence invalidates the timing."""
    for body in bodies:
        r = server.session.post(
            f"{server.dicomweb_root}/studies",
            data=body.data,
            headers={"Content-Type": body.content_type, "Accept": DICOM_JSON},
            timeout=HTTP_TIMEOUT,
        )
        if r.status_code != 200:
            raise BenchError(f"{server.name} STOW answered HTTP {r.status_code}: {r.text[:300]}")
        with contextlib.suppress(ValueError):
            if r.json().get("00081198", {}).get("Value"):
                raise BenchError(f"{server.name} STOW reported failed instances: {r.text[:300]}")


def measure_stow(server: Server, series: Series, bodies: list[StowBody], repeat: int) -> Timing:
    """Time storing the whole series into an archive that does not hold it yet."""
    if qido_study(server, {"StudyInstanceUID": series.study_uid}):
        raise BenchError(f"{server.name} is not fresh: the benchmark study is already there")
    samples: list[float] = []
    batches = f"{len(series.instances)} instances in {len(bodies)} requests"
    note = f"{batches}; study deleted before each repeat"
    for i in range(repeat):
        if i > 0:
            try:
                server.delete_study(series.study_uid)
                wait_study_state(server, series.study_uid, present=False, timeout_s=60)
            except (BenchError, requests.RequestException) as exc:
                log(f"{server.name}: cannot delete the study ({exc}); STOW measured once")
                note = f"{batches}; measured once on a fresh server (deletion failed)"
                break
        settle()
        ms = timed(lambda: stow_all(server, bodies))
        samples.append(ms)
        log(f"{server.name} stow #{i + 1}: {ms:.1f} ms")
        lag = wait_study_state(server, series.study_uid, present=True, timeout_s=60)
        if lag > 0.05:
            log(f"{server.name}: study visible in QIDO {lag:.2f}s after STOW returned")
    return Timing(samples, note)


@dataclass(frozen=True)
class Response:
    """What the checks need of an answer whose body was read by `fetch`."""

    status: int
    headers: Mapping[str, str]
    body: bytes  # empty when fetched with keep_body=False
    size: int  # decoded body length, kept or not

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    server: Server, url: str, params: dict[str, str], accept: str, keep_body: bool = True
) -> Response:
    """GET and read the whole (decoded) body in 1 MiB chunks.

    requests' `.content` reads 10 KiB at a time; on a 210 MB series that costs the
    client several times what the server spends, hiding the difference we measure.
    Timed requests also drop the chunks instead of joining them: allocating 210 MB
    per request made the client's own time noisy.
    """
    with server.session.get(
        url, params=params, headers={"Accept": accept}, timeout=HTTP_TIMEOUT, stream=True
    ) as r:
        if keep_body:
            body = b"".join(r.iter_content(READ_CHUNK))
            size = len(body)
        else:
            body, size = b"", sum(len(chunk) for chunk in r.iter_content(READ_CHUNK))
    return Response(r.status_code, r.headers, body, size)


def multipart_parts(r: Response) -> list[tuple[bytes, bytes]]:
    """Split a multipart/related body into (headers, payload) pairs."""
    content_type = r.headers.get("Content-Type", "")
    params = {}
    for item in content_type.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        params[key.lower()] = value.strip('"')
    if not content_type.lower().startswith("multipart/related") or "boundary" not in params:
        raise BenchError(f"not a multipart/related response: {content_type!r}")
    delimiter = b"--" + params["boundary"].encode()
    parts = []
    for chunk in r.body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        headers, _, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        parts.append((headers, payload.removesuffix(b"\r\n")))
    return parts


def check_qido(r: Response, series: Series) -> str:
    """Exactly our study, so the query really matched something."""
    found = [s.get("0020000D", {}).get("Value", [None])[0] for s in r.json()]
    if found != [series.study_uid]:
        raise BenchError(f"QIDO by PatientID found {found}, expected the one benchmark study")
    return f"1 study, {len(r.body)} B"


def check_metadata(r: Response, series: Series) -> str:
    """Every instance listed; also says how pixel data is represented (size matters)."""
    items = r.json()
    uids = {item.get("00080018", {}).get("Value", [None])[0] for item in items}
    if uids != {i.sop_uid for i in series.instances}:
        raise BenchError(f"series metadata lists {len(items)} instances, not the expected set")
    pixel = items[0].get("7FE00010", {})
    pixel_desc = "BulkDataURI" if "BulkDataURI" in pixel else "inline" if pixel else "absent"
    return f"{len(items)} instances, {len(r.body) / 1e6:.1f} MB JSON, PixelData {pixel_desc}"


def check_retrieve(r: Response, series: Series) -> str:
    """All instances, and whether they come back as stored (transfer-syntax=*)."""
    if len(r.body) < series.total_bytes:
        raise BenchError(
            f"series retrieve body {len(r.body)} B < sum of files {series.total_bytes} B"
        )
    parts = multipart_parts(r)
    if len(parts) != len(series.instances):
        raise BenchError(f"series retrieve returned {len(parts)} parts")
    expected = {i.sha256 for i in series.instances}
    identical = sum(hashlib.sha256(p).hexdigest() in expected for _, p in parts)
    first_headers = parts[0][0].decode(errors="replace").replace("\r\n", " | ")
    ts = pydicom.dcmread(io.BytesIO(parts[0][1]), stop_before_pixels=True).file_meta.get(
        "TransferSyntaxUID", "?"
    )
    return (
        f"{len(parts)} parts, {len(r.body) / 1e6:.1f} MB, byte-identical {identical}/"
        f"{len(parts)}, transfer syntax {ts}; first part headers: {first_headers}"
    )


def check_rendered(r: Response, series: Series) -> str:
    """A JPEG, not an error page or a PNG."""
    content_type = r.headers.get("Content-Type", "")
    if not content_type.startswith("image/jpeg") or not r.body.startswith(b"\xff\xd8"):
        raise BenchError(f"rendered is not a JPEG (Content-Type {content_type!r})")
    return f"{content_type}, {len(r.body)} B"


@dataclass(frozen=True)
class ReadOp:
    """A read operation: URL suffix, Accept header and the check of a good answer."""

    name: str
    path: str
    accept: str
    check: Callable[[Response, Series], str]
    params: dict[str, str] = field(default_factory=dict)
    min_bytes: int = 1  # every timed answer must be at least this big (after decoding)


def read_ops(series: Series) -> list[ReadOp]:
    """The read side of the comparison, on the series just stored."""
    s, se = series.study_uid, series.series_uid
    middle = series.instances[len(series.instances) // 2].sop_uid
    return [
        ReadOp(
            "qido-studies", "/studies", DICOM_JSON, check_qido, {"PatientID": series.patient_id}
        ),
        ReadOp("series-metadata", f"/studies/{s}/series/{se}/metadata", DICOM_JSON, check_metadata),
        ReadOp(
            "series-retrieve",
            f"/studies/{s}/series/{se}",
            RETRIEVE_ACCEPT,
            check_retrieve,
            min_bytes=series.total_bytes,
        ),
        ReadOp(
            "rendered-frame",
            f"/studies/{s}/series/{se}/instances/{middle}/rendered",
            "image/jpeg",
            check_rendered,
        ),
    ]


def measure_read(server: Server, op: ReadOp, series: Series, repeat: int) -> Timing:
    """One validated warm-up, then `repeat` timed requests reading the full body."""
    url = server.dicomweb_root + op.path
    warmup = fetch(server, url, op.params, op.accept)
    if warmup.status != 200:
        raise BenchError(
            f"{server.name} {op.name} answered HTTP {warmup.status}: {warmup.body[:300]!r}"
        )
    note = op.check(warmup, series)
    note += f"; Content-Encoding {warmup.headers.get('Content-Encoding', 'none')}"
    if warmup.headers.get("Connection", "").lower() == "close":
        note += "; Connection: close (no keep-alive)"
    log(f"{server.name} {op.name} warm-up OK: {note}")
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fetch(server, url, op.params, op.accept, keep_body=False)
        samples.append((time.perf_counter() - t0) * 1000.0)
        if r.status != 200 or r.size < op.min_bytes:
            raise BenchError(f"{server.name} {op.name} answered HTTP {r.status} ({r.size} B)")
    log(f"{server.name} {op.name}: " + ", ".join(f"{ms:.1f}" for ms in samples) + " ms")
    return Timing(samples, note)


def benchmark_server(
    server: Server, series: Series, bodies: list[StowBody], repeat: int, accept_encoding: str
) -> dict[str, Timing]:
    """STOW first (it loads the data), then every read operation on that data."""
    server.session.headers["Accept-Encoding"] = accept_encoding
    results = {"stow": measure_stow(server, series, bodies, repeat)}
    settle()
    for op in read_ops(series):
        results[op.name] = measure_read(server, op, series, repeat)
    return results


# --------------------------------------------------------------------------- report


def print_report(
    results: dict[str, dict[str, Timing]],
    servers: dict[str, Server],
    errors: dict[str, str],
    args: argparse.Namespace,
    series: Series,
) -> bool:
    """Print the comparison table on stdout; True if every evaluated target passed."""
    print()
    print("pacsflow vs Orthanc DICOMweb benchmark")
    print(f"  machine : {machine_description()}")
    print(
        f"  Orthanc : {orthanc_binary_version()}"
        + (f"; {servers['orthanc'].version}" if "orthanc" in servers else "")
    )
    if "orthanc" in servers:
        print(f"            config: {servers['orthanc'].config_note}")
    print(f"  pacsflow: {pacsflow_version()}")
    print(
        f"  data    : {len(series.instances)} CT slices {args.size}x{args.size} int16, "
        f"Explicit VR LE, {series.total_bytes / 1e6:.1f} MB, seed {args.seed}"
    )
    print(
        f"  method  : servers run one at a time in a private netns, loopback, keep-alive "
        f"session, HTTP Basic, Accept-Encoding {args.accept_encoding!r}; repeat "
        f"{args.repeat} after 1 warm-up (reads), STOW batch {args.stow_batch}; median (min) ms"
    )
    for name, server_results in results.items():
        print(f"  checks on {name}:")
        for op, timing in server_results.items():
            print(f"    {op:<16} {timing.note} ({len(timing.samples)} samples)")
    print()
    rows = [
        (op, results.get("pacsflow", {}).get(op), results.get("orthanc", {}).get(op), target)
        for op, target in TARGETS.items()
    ]
    return print_ratio_table("operation", rows, errors)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="DICOMweb latency of pacsflow vs Orthanc 1.10 (run as root; see README)."
    )
    parser.add_argument(
        "--only", choices=["orthanc", "pacsflow"], help="benchmark one server only (no ratios)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats per operation")
    parser.add_argument("--stow-batch", type=int, default=50, help="instances per STOW request")
    parser.add_argument("--orthanc-port", type=int, default=8042)
    parser.add_argument("--pacsflow-port", type=int, default=8000)
    parser.add_argument(
        "--orthanc-series-metadata",
        choices=["Full", "Extrapolate"],
        default="Full",
        help="Orthanc DicomWeb.SeriesMetadata (default: Full)",
    )
    parser.add_argument(
        "--accept-encoding",
        default="gzip, deflate",
        help="client Accept-Encoding (default: what requests and browsers send;"
        " 'identity' turns off response compression)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.stow_batch < 1 or args.slices < 1:
        parser.error("--repeat, --stow-batch and --slices must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    wanted = [args.only] if args.only else ["orthanc", "pacsflow"]

    if "orthanc" in wanted and (missing := missing_orthanc_files()):
        print(
            f"Orthanc is not installed (missing {', '.join(map(str, missing))}).\n"
            f"Install it with:\n    {INSTALL_CMD}\n(or run bench/install-orthanc.sh)",
            file=sys.stderr,
        )
        return 2
    if reason := cannot_run_reason([], need_pacsflow="pacsflow" in wanted):
        print(reason, file=sys.stderr)
        return 2

    def run(workdir: Path) -> bool:
        results: dict[str, dict[str, Timing]] = {}
        servers: dict[str, Server] = {}
        errors: dict[str, str] = {}
        series = load_series(args.data_dir or workdir / "data", args.slices, args.seed, args.size)
        bodies = build_stow_bodies(series, args.stow_batch)
        for name in wanted:
            try:
                context = (
                    running_orthanc(
                        workdir / "orthanc",
                        args.orthanc_port,
                        args.orthanc_series_metadata,
                        args.startup_timeout,
                    )
                    if name == "orthanc"
                    else running_pacsflow(
                        workdir / "pacsflow", args.pacsflow_port, args.startup_timeout
                    )
                )
                with context as server:
                    servers[name] = server
                    results[name] = benchmark_server(
                        server, series, bodies, args.repeat, args.accept_encoding
                    )
            except (BenchError, requests.RequestException) as exc:
                log(f"{name} failed: {exc}")
                errors[name] = str(exc)
        return print_report(results, servers, errors, args, series)

    script = Path(__file__).resolve()
    return run_in_private_netns(script, argv, "pacsflow-bench-", args.keep, run)


if __name__ == "__main__":
    sys.exit(main())
