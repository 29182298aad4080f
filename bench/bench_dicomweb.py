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
import importlib.metadata
import io
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO_ROOT = Path(__file__).resolve().parent.parent
PACSFLOW_BIN = REPO_ROOT / ".venv" / "bin" / "pacsflow"
ORTHANC_BIN = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_CMD = "apt-get install -y orthanc orthanc-dicomweb"
NETNS_MARK = "PACSFLOW_BENCH_IN_NETNS"
USER = "admin"
PASSWORD = "bench-password"
DATA_FORMAT_VERSION = 1
DICOM_JSON = "application/dicom+json"
RETRIEVE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
HTTP_TIMEOUT = (10.0, 600.0)
READ_CHUNK = 1 << 20
STOP_TIMEOUT_S = 30.0
# operation name -> highest acceptable ratio pacsflow/Orthanc (medians)
TARGETS: dict[str, float] = {
    "stow": 1.0,
    "qido-studies": 1.0,
    "series-metadata": 0.5,
    "series-retrieve": 1.0,
    "rendered-frame": 1.0,
}


class BenchError(RuntimeError):
    """A failure that makes a server's numbers meaningless (bad response, no start...)."""


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- setup checks


def missing_orthanc_files() -> list[Path]:
    """Orthanc and its DICOMweb plugin come from Debian packages, not from the venv."""
    return [p for p in (ORTHANC_BIN, DICOMWEB_PLUGIN) if not p.exists()]


def enter_private_netns(argv: list[str]) -> None:
    """Re-exec under ``unshare -n`` (once), then bring up lo inside the namespace.

    exec (not a child) keeps this process in the foreground so Ctrl-C reaches the
    code that stops the servers.
    """
    if os.environ.get(NETNS_MARK) != "1":
        env = dict(os.environ, **{NETNS_MARK: "1"})
        script = str(Path(__file__).resolve())
        log("re-executing inside a private network namespace (unshare -n)")
        os.execvpe("unshare", ["unshare", "--net", "--", sys.executable, script, *argv], env)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    interfaces = [
        line.split(":")[0].strip()
        for line in Path("/proc/self/net/dev").read_text().splitlines()[2:]
    ]
    if interfaces != ["lo"]:
        raise BenchError(f"expected a namespace with only 'lo', found {interfaces}")


# --------------------------------------------------------------------------- test data


@dataclass(frozen=True)
class Instance:
    """One generated Part-10 file, with what we need to check it comes back intact."""

    path: Path
    sop_uid: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Series:
    """The synthetic CT series both servers receive."""

    patient_id: str
    study_uid: str
    series_uid: str
    instances: list[Instance]

    @property
    def total_bytes(self) -> int:
        return sum(i.size for i in self.instances)


def ct_phantom(z_mm: float, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A crude thorax in HU (body, lungs, spine, table, noise) so pixels look like CT."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    hu = np.full((rows, cols), -1000.0, dtype=np.float32)
    wobble = 1.0 + 0.08 * np.sin(z_mm / 40.0)
    body = ((x - cx) / (200 * wobble)) ** 2 + ((y - cy) / (140 * wobble)) ** 2 <= 1
    hu[body] = 40.0
    for side in (-1, 1):
        lung = ((x - cx - side * 85) / 60) ** 2 + ((y - cy + 10) / (90 * wobble)) ** 2 <= 1
        hu[lung] = -850.0
    spine = (x - cx) ** 2 + (y - cy - 95) ** 2 <= 22**2
    hu[spine] = 700.0
    table = (y > cy + 160) & (y < cy + 172) & (np.abs(x - cx) < 220)
    hu[table] = 300.0
    hu += rng.normal(0.0, 12.0, size=hu.shape).astype(np.float32)
    return hu


def ct_slice_dataset(index: int, seed: int, uids: dict[str, str], pixels: np.ndarray) -> Dataset:
    """Headers a real CT would carry, so both servers index and render it normally."""
    rows, cols = pixels.shape
    spacing, thickness = 0.7, 1.0
    z = -200.0 + index * thickness
    sop_uid = generate_uid(entropy_srcs=[str(seed), "instance", str(index)])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.StudyTime = ds.SeriesTime = "093000"
    ds.AcquisitionTime = ds.ContentTime = f"0930{index % 60:02d}"
    ds.AccessionNumber = f"BENCH{seed:06d}"
    ds.Modality = "CT"
    ds.Manufacturer = "pacsflow-bench"
    ds.InstitutionName = "Bench Lab"
    ds.ReferringPhysicianName = "Referrer^Bench"
    ds.StationName = "BENCHCT1"
    ds.StudyDescription = "CT THORAX (synthetic benchmark)"
    ds.SeriesDescription = "Thorax 1.0 mm"
    ds.ManufacturerModelName = "Synthetic"
    ds.PatientName = f"Bench^Patient{seed}"
    ds.PatientID = uids["patient_id"]
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientAge = "054Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{thickness:.1f}"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = f"{spacing * cols:.1f}"
    ds.GantryDetectorTilt = "0"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [
        f"{-spacing * cols / 2:.2f}",
        f"{-spacing * rows / 2:.2f}",
        f"{z:.2f}",
    ]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.2f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [f"{spacing:.3f}", f"{spacing:.3f}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def generate_series(directory: Path, slices: int, seed: int, size: int) -> None:
    """Write the series and a manifest; UIDs derive from the seed so reruns are comparable."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    uids = {
        "patient_id": f"BENCH-{seed}",
        "study": generate_uid(entropy_srcs=[str(seed), "study"]),
        "series": generate_uid(entropy_srcs=[str(seed), "series"]),
        "frame_of_reference": generate_uid(entropy_srcs=[str(seed), "frame-of-reference"]),
    }
    files = []
    for index in range(slices):
        hu = ct_phantom(index * 1.0, size, size, rng)
        stored = np.clip(np.rint(hu + 1024.0), -32768, 32767).astype(np.int16)
        ds = ct_slice_dataset(index, seed, uids, stored)
        path = directory / f"CT{index + 1:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        files.append({"name": path.name, "sop_uid": ds.SOPInstanceUID})
        if (index + 1) % 100 == 0:
            log(f"generated {index + 1}/{slices} slices")
    manifest = {
        "format": DATA_FORMAT_VERSION,
        "slices": slices,
        "seed": seed,
        "size": size,
        "patient_id": uids["patient_id"],
        "study_uid": uids["study"],
        "series_uid": uids["series"],
        "files": files,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))


def load_series(directory: Path, slices: int, seed: int, size: int) -> Series:
    """Reuse a matching generated series (e.g. --data-dir across runs), else generate it."""
    manifest_path = directory / "manifest.json"
    wanted = {"format": DATA_FORMAT_VERSION, "slices": slices, "seed": seed, "size": size}
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if any(manifest.get(k) != v for k, v in wanted.items()):
        log(f"generating {slices} CT slices {size}x{size} into {directory}")
        generate_series(directory, slices, seed, size)
        manifest = json.loads(manifest_path.read_text())
    else:
        log(f"reusing generated series in {directory}")
    instances = []
    for entry in manifest["files"]:
        path = directory / entry["name"]
        data = path.read_bytes()
        instances.append(
            Instance(path, entry["sop_uid"], len(data), hashlib.sha256(data).hexdigest())
        )
    return Series(manifest["patient_id"], manifest["study_uid"], manifest["series_uid"], instances)


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
        """Orthanc's DICOMweb has no DELETE: map the UID to its id, delete via REST."""
        r = self.session.post(f"{self.base_url}/tools/lookup", data=study_uid, timeout=HTTP_TIMEOUT)
        r.raise_for_status()
        for hit in r.json():
            if hit.get("Type") == "Study":
                url = f"{self.base_url}/studies/{hit['ID']}"
                self.session.delete(url, timeout=HTTP_TIMEOUT).raise_for_status()


class PacsflowServer(Server):
    def delete_study(self, study_uid: str) -> None:
        """pacsflow deletes through DICOMweb itself."""
        r = self.session.delete(f"{self.dicomweb_root}/studies/{study_uid}", timeout=HTTP_TIMEOUT)
        if r.status_code not in (200, 202, 204):
            raise BenchError(f"DELETE study answered HTTP {r.status_code}: {r.text[:200]}")


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


def wait_ready(server: Server, url: str, timeout_s: float) -> None:
    """Poll until the server answers 200 or its process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.name} exited with code {server.process.returncode} during startup; "
                f"log {server.log_path} (kept with --keep):\n{log_tail(server.log_path)}"
            )
        with contextlib.suppress(requests.RequestException):
            if server.session.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError(
        f"{server.name} not ready after {timeout_s:.0f}s ({url}); log {server.log_path} "
        "(kept with --keep):\n"
        f"{log_tail(server.log_path)}"
    )


@contextlib.contextmanager
def running_orthanc(
    workdir: Path, port: int, series_metadata: str, startup_timeout: float
) -> Iterator[Server]:
    """Orthanc with a throwaway storage dir, DICOMweb plugin, and the same auth as pacsflow."""
    workdir.mkdir(parents=True)
    config = {
        "Name": "pacsflow-bench",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "StorageCompression": False,
        "HttpServerEnabled": True,
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "DicomServerEnabled": False,
        "KeepAlive": True,
        "TcpNoDelay": True,
        "SaveJobs": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": False,
            "Ssl": False,
            "SeriesMetadata": series_metadata,
        },
    }
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
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
    """`pacsflow up` from the repo root with a fresh PACSFLOW_HOME."""
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
    proc = spawn([str(PACSFLOW_BIN), "up"], env, REPO_ROOT, log_path)
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


def settle() -> None:
    """Flush dirty pages (untimed) so writeback from the last STOW does not land in the next
    measurement; both servers get the same treatment."""
    os.sync()


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


def orthanc_binary_version() -> str:
    if not ORTHANC_BIN.exists():
        return "not installed"
    r = subprocess.run([str(ORTHANC_BIN), "--version"], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0] if (r.stdout or r.stderr) else "?"


def fmt_timing(t: Timing | None) -> str:
    return f"{t.median:10.1f} ({t.minimum:8.1f})" if t else f"{'-':>10} {'':>10}"


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
    header = (
        f"{'operation':<16} {'pacsflow ms (min)':>21} {'Orthanc ms (min)':>21} "
        f"{'ratio':>7} {'target':>7}  result"
    )
    print(header)
    print("-" * len(header))
    all_pass = True
    for op, target in TARGETS.items():
        p = results.get("pacsflow", {}).get(op)
        o = results.get("orthanc", {}).get(op)
        if p and o:
            ratio = p.median / o.median
            verdict = "PASS" if ratio <= target else "FAIL"
            all_pass &= verdict == "PASS"
            ratio_s = f"{ratio:7.2f}"
        else:
            ratio_s, verdict = f"{'-':>7}", "-"
        print(
            f"{op:<16} {fmt_timing(p):>21} {fmt_timing(o):>21} {ratio_s} "
            f"{'<= ' + format(target, '.1f'):>7}  {verdict}"
        )
    for name, message in errors.items():
        print(f"\nERROR ({name}): {message}")
    return all_pass and not errors


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
    parser.add_argument("--slices", type=int, default=400, help="slices in the CT series")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--seed", type=int, default=1, help="seed for pixels and UIDs")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep/reuse the generated series here (default: inside the temp dir)",
    )
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
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.stow_batch < 1 or args.slices < 1:
        parser.error("--repeat, --stow-batch and --slices must be positive")
    return args


def raise_system_exit(signum: int, _frame: object) -> None:
    """Turn SIGTERM/SIGHUP into an exception so the servers are stopped on the way out."""
    raise SystemExit(128 + signum)


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
    if "pacsflow" in wanted and not PACSFLOW_BIN.exists():
        print(f"{PACSFLOW_BIN} not found; run `uv sync` in {REPO_ROOT}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print(
            "must run as root: the servers run in a private network namespace (unshare -n)",
            file=sys.stderr,
        )
        return 2
    for tool in ("unshare", "ip", "nproc"):
        if not shutil.which(tool):
            print(f"required tool {tool!r} not found on PATH", file=sys.stderr)
            return 2

    # explicit, because a shell starting us in the background leaves SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_system_exit)
    signal.signal(signal.SIGHUP, raise_system_exit)
    try:
        enter_private_netns(argv)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"cannot set up the private network namespace: {exc}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="pacsflow-bench-"))
    log(f"work dir {workdir}")
    results: dict[str, dict[str, Timing]] = {}
    servers: dict[str, Server] = {}
    errors: dict[str, str] = {}
    try:
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
        ok = print_report(results, servers, errors, args, series)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        reap_namespace()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
