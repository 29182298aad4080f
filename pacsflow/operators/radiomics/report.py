"""Radiomics results of a segmentation as a DICOM Comprehensive 3D SR (TID 1500), and back.

The document, written with highdicom:

- TID 1500 Measurement Report "Imaging Measurement Report"; procedure reported by modality
  (CID 100); the observer is the device "pacsflow radiomics"; an image library (TID 1600)
  lists the source images the volume was built from.
- One TID 1411 Volumetric ROI measurement group per segment or ROI, in the order given:

  - Tracking Identifier: the segment or ROI label; Tracking Unique Identifier: a UID derived
    from the segmentation's SOP Instance UID and the segment or ROI number, so a region keeps
    its tracking UID in every report about it.
  - The region. SEG: "Referenced Segment" (the SEG instance and segment number) with a
    "Source image for segmentation" per image the segment touches (the "Source series for
    segmentation" when it touches none). RTSTRUCT: highdicom's Referenced Segment is for SEG
    only, so the ROI is referenced as TID 1411 allows for structure sets: "Region in Space"
    (DCM 130488), a COMPOSITE reference to the RT Structure Set instance, with "Referenced
    Region of Interest Identifier" (DCM 130489) holding the ROI Number. highdicom reads such a
    group back as a volumetric group; it has no constructor for it, so it is assembled here.
  - Finding category and type: the SEG segment's Segmented Property Category and Type.
  - Algorithm Identification (TID 4019): "pyradiomics", its version, and the parameters
    "parameter set: <name>" and "settings digest: <sha256>" (see ``parameters``).
  - One NUM per feature, coded and with units as ``codes`` says. A feature pyradiomics
    returned as NaN or infinite has no value to encode (and highdicom cannot read a NUM
    without one), so it is a TEXT item (TID 1411 row 17) named by the feature's concept:
    "not computed: not a number".
  - A region without features carries no NUM but a TEXT item (99PACSFLOW NotComputed)
    "not computed: <reason>", e.g. "not computed: empty segment".

Re-runs. Every input that shapes the document's bytes goes into its SOP Instance UID:
the segmentation's SOP Instance UID, the image series UID, the parameter set name and
settings digest, the pyradiomics, highdicom and pacsflow versions, the series and instance
numbers, the series description, the content date and time and the report layout version.
The Content Date and Time are the segmentation's (Content Date/Time of a SEG, Structure Set
Date/Time of an RTSTRUCT, else its series or study date), not the clock's. So a re-run on
identical inputs with identical parameters yields the identical instance, which the archive
takes as a duplicate; any change yields a new instance. The series UID depends on the
segmentation alone, so all reports about one segmentation, whatever the parameters, are
instances of one results series. Nothing is ever replaced.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage
from pydicom.valuerep import DA, TM

from pacsflow.operators.radiomics import codes as feature_codes
from pacsflow.operators.radiomics.features import RegionFeatures, binary_mask
from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionMask, RegionSource

# Bump when the document's layout changes, so that a re-run after an upgrade makes a new
# instance instead of one the archive would refuse as a different object under an old UID.
REPORT_LAYOUT_VERSION = "1"
ALGORITHM_NAME = "pyradiomics"
MANUFACTURER = "pacsflow"
MODEL_NAME = "pacsflow radiomics"
SERIES_DESCRIPTION = "Radiomics (pyradiomics)"
RESULTS_SERIES_NUMBER = 9900
NOT_COMPUTED_PREFIX = "not computed: "
PARAMETER_SET_PREFIX = "parameter set: "
DIGEST_PREFIX = "settings digest: "

# Name-based (version 5) UUIDs as UIDs under 2.25 (PS3.5 B.2, ITU-T X.667).
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pacsflow:radiomics")

REGION_IN_SPACE = Code("130488", "DCM", "Region in Space")
REFERENCED_ROI_IDENTIFIER = Code("130489", "DCM", "Referenced Region of Interest Identifier")
NOT_COMPUTED = Code("NotComputed", feature_codes.PRIVATE_SCHEME, "Radiomics features not computed")

_PROCEDURES = {
    "CT": codes.cid100.CTUnspecifiedBodyRegion,
    "MR": codes.cid100.MRIUnspecifiedBodyRegion,
    "PT": codes.cid100.PETUnspecifiedBodyRegion,
    "NM": codes.cid100.NMUnspecifiedBodyRegion,
}
# TID 1500 may be carried by any of these; pacsflow writes Comprehensive 3D SR.
_SR_CLASSES: dict[str, type[hd.sr.Comprehensive3DSR | hd.sr.ComprehensiveSR | hd.sr.EnhancedSR]] = {
    Comprehensive3DSRStorage: hd.sr.Comprehensive3DSR,
    ComprehensiveSRStorage: hd.sr.ComprehensiveSR,
    EnhancedSRStorage: hd.sr.EnhancedSR,
}
_NON_FINITE = {"nan": "not a number", "inf": "positive infinity", "-inf": "negative infinity"}


@dataclass(frozen=True)
class FeatureRow:
    """One feature of one region as read back from a report, for JSON and CSV.

    ``feature`` is the pyradiomics key, None for a concept that is not one of ours (a TID 1500
    report written by another tool reads too). ``value`` is None when the region or this
    feature was not computed; ``not_computed`` then says why ("empty segment", pyradiomics'
    message, "not a number"). ``feature`` and the code are None on the one row of a region
    that was not computed at all. ``region_number`` is the segment or ROI number.
    """

    region_number: int | None
    region_label: str
    tracking_uid: str
    feature: str | None
    code_value: str | None
    coding_scheme: str | None
    code_meaning: str | None
    value: float | None
    unit: str | None
    not_computed: str | None = None
    sr_sop_instance_uid: str = ""  # the report the row was read from


CSV_COLUMNS = tuple(FeatureRow.__dataclass_fields__)


def results_series_uid(segmentation_uid: str) -> str:
    """The results series of every report about one segmentation instance."""
    return _uid("results series", segmentation_uid)


def tracking_uid(segmentation_uid: str, number: int) -> str:
    """The Tracking Unique Identifier of segment or ROI ``number`` of a segmentation."""
    return _uid("region", segmentation_uid, str(number))


def report_instance_uid(*parts: str) -> str:
    """A report's SOP Instance UID from everything that shapes its content."""
    return _uid("report", REPORT_LAYOUT_VERSION, *parts)


def measurement_report(
    volume: ImageVolume,
    regions: Sequence[RegionMask],
    results: Sequence[RegionFeatures],
    parameter_set: str,
    parameters_digest: str,
    series_number: int = RESULTS_SERIES_NUMBER,
    instance_number: int = 1,
    *,
    series_description: str = SERIES_DESCRIPTION,
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 report of ``results`` (one per region, in the same order as ``regions``).

    All regions come from one segmentation (SEG or RTSTRUCT) on ``volume``. Raises
    RadiomicsError naming what does not fit together.
    """
    segmentation = _check_inputs(volume, regions, results)
    try:
        return _measurement_report(
            volume,
            segmentation,
            regions,
            results,
            parameter_set,
            parameters_digest,
            series_number,
            instance_number,
            series_description,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RadiomicsError(
            f"cannot write the radiomics SR of segmentation {segmentation.SOPInstanceUID}: {exc}"
        ) from exc


def _measurement_report(
    volume: ImageVolume,
    segmentation: Dataset,
    regions: Sequence[RegionMask],
    results: Sequence[RegionFeatures],
    parameter_set: str,
    parameters_digest: str,
    series_number: int,
    instance_number: int,
    series_description: str,
) -> hd.sr.Comprehensive3DSR:
    segmentation_uid = str(segmentation.SOPInstanceUID)
    pyradiomics_version = results[0].pyradiomics_version
    modality = str(volume.source_images[0].get("Modality", "")) or None
    algorithm = hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME,
        version=pyradiomics_version,
        parameters=[
            f"{PARAMETER_SET_PREFIX}{parameter_set}",
            f"{DIGEST_PREFIX}{parameters_digest}",
        ],
    )
    groups = [
        _measurement_group(volume, region, result, modality, algorithm)
        for region, result in zip(regions, results, strict=True)
    ]
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=_uid("device"), name=MODEL_NAME, manufacturer_name=MANUFACTURER
                ),
            )
        ),
        procedure_reported=_PROCEDURES.get(modality or "", codes.cid100.ImagingProcedure),
        imaging_measurements=groups,
        referenced_images=list(volume.source_images),
    )
    content_date, content_time = _content_datetime(segmentation)
    software = _software_versions(pyradiomics_version)
    sop_instance_uid = report_instance_uid(
        segmentation_uid,
        volume.series_instance_uid,
        parameter_set,
        parameters_digest,
        *software,
        str(series_number),
        str(instance_number),
        series_description,
        content_date,
        content_time,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[segmentation, *volume.source_images],
        content=content,
        series_instance_uid=results_series_uid(segmentation_uid),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=series_description,
        manufacturer_model_name=MODEL_NAME,
        content_date=content_date,
        content_time=content_time,
        coding_schemes=[feature_codes.private_coding_scheme()],
    )
    sr.add_new("SoftwareVersions", "LO", list(software))
    # highdicom stamps the clock in these; the report's own date keeps re-runs byte-identical.
    # (Its Contributing Equipment would describe the segmentation's equipment as having
    # acquired it, as of now; the SR does not need it.)
    if "ContributingEquipmentSequence" in sr:
        del sr.ContributingEquipmentSequence
    sr.InstanceCreationDate = DA(content_date)
    sr.InstanceCreationTime = TM(content_time)
    return sr


def read_measurement_report(sr: Dataset) -> list[FeatureRow]:
    """The features of a report written by ``measurement_report``, one row per feature.

    A region that was not computed gives one row without feature and value, with the reason.
    Raises RadiomicsError if ``sr`` is not such a report.
    """
    try:
        sr_class = _SR_CLASSES.get(str(sr.get("SOPClassUID", "")), hd.sr.Comprehensive3DSR)
        document = sr_class.from_dataset(sr)
        report = document.content
        if not isinstance(report, hd.sr.MeasurementReport):
            raise ValueError("its content is not a TID 1500 Measurement Report")
        groups = report.get_volumetric_roi_measurement_groups()
    except (ValueError, TypeError, AttributeError) as exc:
        raise RadiomicsError(
            f"SR {sr.get('SOPInstanceUID', '?')} is not a radiomics measurement report: {exc}"
        ) from exc
    uid = str(sr.SOPInstanceUID)
    return [replace(row, sr_sop_instance_uid=uid) for group in groups for row in _group_rows(group)]


def rows_to_csv(rows: Sequence[FeatureRow]) -> str:
    """``rows`` as CSV with a header line; missing values are empty fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(_csv_field(getattr(row, column)) for column in CSV_COLUMNS)
    return out.getvalue()


def _csv_field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    return str(value)


def _check_inputs(
    volume: ImageVolume, regions: Sequence[RegionMask], results: Sequence[RegionFeatures]
) -> Dataset:
    if not regions:
        raise RadiomicsError("a measurement report needs at least one segment or ROI")
    if len(results) != len(regions):
        raise RadiomicsError(f"{len(results)} results for {len(regions)} segments or ROIs")
    if not volume.source_images:
        raise RadiomicsError("the image volume has no source images to reference")
    segmentation = regions[0].segmentation
    for region, result in zip(regions, results, strict=True):
        if region.segmentation.SOPInstanceUID != segmentation.SOPInstanceUID:
            raise RadiomicsError(
                "segments or ROIs of several segmentations in one report: "
                f"{segmentation.SOPInstanceUID} and {region.segmentation.SOPInstanceUID}"
            )
        if result.number != region.number:
            raise RadiomicsError(
                f"result for number {result.number} given for segment or ROI {region.number}"
            )
    versions = {result.pyradiomics_version for result in results}
    if len(versions) > 1:
        raise RadiomicsError(f"results of several pyradiomics versions: {sorted(versions)}")
    return segmentation


def _measurement_group(
    volume: ImageVolume,
    region: RegionMask,
    result: RegionFeatures,
    modality: str | None,
    algorithm: hd.sr.AlgorithmIdentification,
) -> (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
):
    segmentation_uid = str(region.segmentation.SOPInstanceUID)
    tracking = hd.sr.TrackingIdentifier(
        uid=tracking_uid(segmentation_uid, region.number), identifier=_label(region)
    )
    intensity = feature_codes.intensity_unit(modality, result.normalized)
    measurements = [
        _measurement(key, value, intensity)
        for key, value in result.features.items()
        if math.isfinite(value)
    ]
    # A NUM must carry a value for highdicom to read it back; a feature without one is a TEXT
    # item (TID 1411 row 17) named by the feature's concept, saying why.
    missing = [
        _not_computed(feature_codes.feature_concept(key), _NON_FINITE[repr(value)])
        for key, value in result.features.items()
        if not math.isfinite(value)
    ]
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | (
        hd.sr.MeasurementsAndQualitativeEvaluations
    )
    if region.source is RegionSource.SEG:
        category, finding = _segment_property(region)
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_segment=_referenced_segment(volume, region),
            finding_category=category,
            finding_type=finding,
            algorithm_id=algorithm,
            measurements=measurements or None,
        )
    else:
        group = _structure_set_group(region, tracking, algorithm, measurements)
    group[0].ContentSequence.extend(missing)
    if result.not_computed is not None:
        group[0].ContentSequence.append(_not_computed(NOT_COMPUTED, result.not_computed))
    return group


def _structure_set_group(
    region: RegionMask,
    tracking: hd.sr.TrackingIdentifier,
    algorithm: hd.sr.AlgorithmIdentification,
    measurements: list[hd.sr.Measurement],
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """A TID 1411 group whose ROI is a structure set ROI ("Region in Space", rows 12b/12c)."""
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, algorithm_id=algorithm
    )
    region_item = hd.sr.CompositeContentItem(
        name=REGION_IN_SPACE,
        referenced_sop_class_uid=str(region.segmentation.SOPClassUID),
        referenced_sop_instance_uid=str(region.segmentation.SOPInstanceUID),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    region_item.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=REFERENCED_ROI_IDENTIFIER,
                value=str(region.number),
                relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
            )
        ]
    )
    container = group[0]
    container.ContentSequence.append(region_item)
    for measurement in measurements:
        container.ContentSequence.extend(measurement)
    container.ContentTemplateSequence[0].TemplateIdentifier = "1411"
    return group


def _referenced_segment(volume: ImageVolume, region: RegionMask) -> hd.sr.ReferencedSegment:
    seg = region.segmentation
    if region.mask.shape == volume.array().shape:
        touched = np.flatnonzero(binary_mask(region.mask).any(axis=(1, 2)))
    else:  # not computed for that reason; the series is all that can be said
        touched = np.array([], dtype=int)
    if len(touched) == 0:
        return hd.sr.ReferencedSegment(
            sop_class_uid=str(seg.SOPClassUID),
            sop_instance_uid=str(seg.SOPInstanceUID),
            segment_number=region.number,
            source_series=hd.sr.SourceSeriesForSegmentation(volume.series_instance_uid),
        )
    return hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=region.number,
        source_images=[
            hd.sr.SourceImageForSegmentation(
                str(volume.source_images[k].SOPClassUID),
                str(volume.source_images[k].SOPInstanceUID),
            )
            for k in touched
        ],
    )


def _segment_property(
    region: RegionMask,
) -> tuple[hd.sr.CodedConcept | None, hd.sr.CodedConcept | None]:
    """The SEG segment's Segmented Property Category and Type, where present."""
    for item in region.segmentation.get("SegmentSequence", []):
        if int(item.get("SegmentNumber", -1)) == region.number:
            return (
                _first_code(item.get("SegmentedPropertyCategoryCodeSequence")),
                _first_code(item.get("SegmentedPropertyTypeCodeSequence")),
            )
    return None, None


def _first_code(sequence: Sequence[Dataset] | None) -> hd.sr.CodedConcept | None:
    if not sequence:
        return None
    try:
        return hd.sr.CodedConcept.from_dataset(sequence[0])
    except (AttributeError, TypeError, ValueError):
        return None


def _measurement(key: str, value: float, intensity: Code) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=feature_codes.feature_concept(key),
        value=value,
        unit=feature_codes.feature_unit(key, intensity),
    )


def _not_computed(name: Code | hd.sr.CodedConcept, reason: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name,
        value=f"{NOT_COMPUTED_PREFIX}{reason}",
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )


def _label(region: RegionMask) -> str:
    if region.label.strip():
        return region.label.strip()
    kind = "Segment" if region.source is RegionSource.SEG else "ROI"
    return f"{kind} {region.number}"


def _content_datetime(segmentation: Dataset) -> tuple[str, str]:
    """The segmentation's own date and time, so that the report does not depend on the clock."""
    for date_attr, time_attr in (
        ("ContentDate", "ContentTime"),
        ("StructureSetDate", "StructureSetTime"),
        ("SeriesDate", "SeriesTime"),
        ("StudyDate", "StudyTime"),
    ):
        date = str(segmentation.get(date_attr) or "").strip()
        if date:
            time = str(segmentation.get(time_attr) or "").strip() or "000000"
            return date, time
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _software_versions(pyradiomics_version: str) -> tuple[str, ...]:
    try:
        pacsflow_version = version("pacsflow")
    except PackageNotFoundError:
        pacsflow_version = "unknown"
    return (
        f"pacsflow {pacsflow_version}",
        f"pyradiomics {pyradiomics_version}",
        f"highdicom {hd.__version__}",
    )


def _group_rows(
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations,
) -> list[FeatureRow]:
    label = group.tracking_identifier or ""
    uid = str(group.tracking_uid or "")
    number = _region_number(group)
    rows = []
    for item in group[0].ContentSequence:
        if item.value_type != hd.sr.ValueTypeValues.TEXT:
            continue
        reason = str(item.value)
        if not reason.startswith(NOT_COMPUTED_PREFIX):
            continue
        reason = reason.removeprefix(NOT_COMPUTED_PREFIX)
        if item.name == NOT_COMPUTED:
            rows.append(FeatureRow(number, label, uid, None, None, None, None, None, None, reason))
            continue
        name = item.name
        rows.append(
            FeatureRow(
                number, label, uid, _feature_key(name), name.value, name.scheme_designator,
                name.meaning, None, None, reason,
            )
        )  # fmt: skip
    for measurement in group.get_measurements():
        name = measurement.name
        rows.append(
            FeatureRow(
                number, label, uid, _feature_key(name), name.value, name.scheme_designator,
                name.meaning, float(measurement.value), measurement.unit.value,
            )
        )  # fmt: skip
    return rows


def _feature_key(concept: hd.sr.CodedConcept) -> str | None:
    try:
        return feature_codes.feature_key(concept)
    except ValueError:
        return None


def _region_number(
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations,
) -> int | None:
    """The segment number (SEG) or ROI Number (RTSTRUCT) the group is about."""
    for item in group[0].ContentSequence:
        if item.name == codes.DCM.ReferencedSegment and "ReferencedSOPSequence" in item:
            return int(item.ReferencedSOPSequence[0].ReferencedSegmentNumber)
        if item.name == REGION_IN_SPACE:
            for child in item.get("ContentSequence", []):
                if child.name == REFERENCED_ROI_IDENTIFIER:
                    return int(child.value)
    return None


def _uid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '|'.join(parts)).int}"
