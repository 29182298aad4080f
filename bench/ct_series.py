"""The synthetic CT series every benchmark sends to both servers.

Generated once with pydicom (optionally cached with --data-dir) from a seed, so runs and
servers see the same bytes and UIDs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from harness import log
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

DATA_FORMAT_VERSION = 1


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
