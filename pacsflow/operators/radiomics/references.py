"""What a SEG or RTSTRUCT was drawn on, so the images can be fetched before the masks are made.

Writers fill the optional reference attributes unevenly, so every place the standard allows is
read: for a SEG the Referenced Series Sequence (same study), the Studies Containing Other
Referenced Instances Sequence (other studies) and each frame's Derivation Image / Source Image
Sequence; for an RTSTRUCT the Referenced Frame of Reference Sequence down to the Contour Image
Sequence, and each contour's own Contour Image Sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import RTStructureSetStorage, SegmentationStorage

from pacsflow.operators.radiomics.model import RadiomicsError


@dataclass(frozen=True)
class References:
    """The images a segmentation refers to: study, series and instances, in reference order.

    ``frame_of_reference_uid`` is empty when the segmentation names none.
    """

    study_instance_uid: str
    series_instance_uids: tuple[str, ...]
    sop_instance_uids: tuple[str, ...]
    frame_of_reference_uid: str


def references_of(segmentation: Dataset) -> References:
    """The images a SEG or RTSTRUCT refers to; RadiomicsError if it names none usable."""
    sop_class = segmentation.get("SOPClassUID")
    if sop_class == SegmentationStorage:
        references = _seg_references(segmentation)
    elif sop_class == RTStructureSetStorage:
        references = _rtstruct_references(segmentation)
    else:
        raise RadiomicsError(
            f"instance {segmentation.get('SOPInstanceUID', '?')} is of SOP class {sop_class}, "
            "neither a Segmentation nor an RT Structure Set"
        )
    if not references.series_instance_uids and not references.sop_instance_uids:
        raise RadiomicsError(
            f"{segmentation.get('Modality', 'segmentation')} {segmentation.SOPInstanceUID} "
            "refers to no image series or instance"
        )
    return references


def frame_source_instances(seg: Dataset) -> tuple[str, ...]:
    """The instances a SEG's frames were derived from (Source Image Sequence), each once."""
    shared = seg.get("SharedFunctionalGroupsSequence") or [Dataset()]
    groups = [shared[0], *seg.get("PerFrameFunctionalGroupsSequence", [])]
    return _unique(
        source.get("ReferencedSOPInstanceUID")
        for group in groups
        for derivation in group.get("DerivationImageSequence", [])
        for source in derivation.get("SourceImageSequence", [])
    )


def _seg_references(seg: Dataset) -> References:
    same_study = list(seg.get("ReferencedSeriesSequence", []))
    other_studies = list(seg.get("StudiesContainingOtherReferencedInstancesSequence", []))
    series = same_study + [
        s for study in other_studies for s in study.get("ReferencedSeriesSequence", [])
    ]
    listed = [
        i.get("ReferencedSOPInstanceUID")
        for s in series
        for i in s.get("ReferencedInstanceSequence", [])
    ]
    study = seg.StudyInstanceUID
    if not same_study and other_studies:  # the images are all in another study
        study = other_studies[0].StudyInstanceUID
    return References(
        study_instance_uid=study,
        series_instance_uids=_unique(s.get("SeriesInstanceUID") for s in series),
        sop_instance_uids=_unique([*listed, *frame_source_instances(seg)]),
        frame_of_reference_uid=seg.get("FrameOfReferenceUID", ""),
    )


def _rtstruct_references(rtstruct: Dataset) -> References:
    frames = list(rtstruct.get("ReferencedFrameOfReferenceSequence", []))
    studies = [s for f in frames for s in f.get("RTReferencedStudySequence", [])]
    series = [s for study in studies for s in study.get("RTReferencedSeriesSequence", [])]
    listed = [
        i.get("ReferencedSOPInstanceUID") for s in series for i in s.get("ContourImageSequence", [])
    ]
    study = studies[0].ReferencedSOPInstanceUID if studies else rtstruct.StudyInstanceUID
    return References(
        study_instance_uid=study,
        series_instance_uids=_unique(s.get("SeriesInstanceUID") for s in series),
        sop_instance_uids=_unique([*listed, *_contour_images(rtstruct)]),
        frame_of_reference_uid=_rtstruct_frame_of_reference(rtstruct, frames),
    )


def _contour_images(rtstruct: Dataset) -> Iterator[str | None]:
    for roi in rtstruct.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            for image in contour.get("ContourImageSequence", []):
                yield image.get("ReferencedSOPInstanceUID")


def _rtstruct_frame_of_reference(rtstruct: Dataset, frames: list[Dataset]) -> str:
    """The frame of reference the ROIs are defined in, else the first one referenced."""
    rois = rtstruct.get("StructureSetROISequence", [])
    candidates = [r.get("ReferencedFrameOfReferenceUID") for r in rois]
    candidates += [f.get("FrameOfReferenceUID") for f in frames]
    return next((str(uid) for uid in candidates if uid), "")


def _unique(uids: Iterable[str | None]) -> tuple[str, ...]:
    """Each UID once, in first-seen order; absent ones dropped."""
    return tuple(dict.fromkeys(str(uid) for uid in uids if uid))
