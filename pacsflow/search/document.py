"""Series documents: what the search backends index, built from a series' DICOM JSON.

:func:`series_document` takes the DICOM JSON (PS3.18 F.2) of every instance of a series, as
``GET .../series/{uid}/metadata`` gives it, and returns a document with the fields of
:data:`~pacsflow.search.model.FIELDS`. How it reads the header:

- The representative instance is the middle one by Instance Number (then SOP Instance UID),
  so that a localizer or a first slice sorted oddly does not speak for the series. The
  top-level header fields and ``tags`` come from it; the summaries from every instance.
- ``tags`` holds every element of that instance by keyword, typed by the element's VR in the
  data dictionary (the VR the JSON states only where the dictionary allows several), so one
  keyword has one type in every document. Private and unknown elements are keyed by their
  tag, ``"00091001"``, and kept as strings: their meaning (and VR) depends on the private
  creator that holds the block, so no one type fits them, and for the same reason private
  sequences are left out (one creator's sequence would clash with another's string under
  the same key). Also left out: bulk and inline binary data, group lengths,
  elements without a value, elements of more than ``MAX_VALUES`` values (contour points,
  LUTs), sequence items past ``MAX_ITEMS`` per sequence or ``MAX_ITEMS_TOTAL`` per
  document (per-frame functional groups of a long multi-frame), since none can be searched
  usefully and they would make the document as large as the header.
- Values: DA ``YYYY-MM-DD``; TM ``HH:MM:SS[.f]`` (a keyword; fixed layout, so it sorts);
  DT an ISO date-time; numbers as numbers; PN ``{Alphabetic, FamilyName, GivenName,
  MiddleName, NamePrefix, NameSuffix}`` (components present only when not empty) from the
  Alphabetic group, or from the Ideographic or Phonetic one when a name has no Alphabetic
  group; anything else as a string. One value is a scalar, several a list, a sequence a
  list of objects. A value that does not parse as its VR says is kept as the string it is
  (real data is messy), and a top-level field then is left out rather than mistyped.
- Date-times: a DT's own offset, else the instance's Timezone Offset From UTC, converts it to
  UTC, written ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Without either the local time is taken as it
  is and written without the ``Z``: naive. The fixed width keeps string order equal to time
  order. StudyDateTime is StudyDate + StudyTime (absent without a time); an instance's
  acquisition time is AcquisitionDateTime, else AcquisitionDate + AcquisitionTime, else the
  frames' FrameAcquisitionDateTime.
- Slice positions project each image's (or frame's) ImagePositionPatient on the normal of its
  own ImageOrientationPatient (per-frame or shared functional groups of a multi-frame).

:func:`document_field_type` says how a dotted path compares, for the query compilers.
A field without a value is absent: never null, ``""`` or ``[]``. Nothing here logs values:
tags, UIDs and counts only, at DEBUG.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pydicom.datadict import DicomDictionary, keyword_dict

from pacsflow.search.model import FIELDS, FieldType

if TYPE_CHECKING:  # the report reader pulls in highdicom and SimpleITK: only when needed
    from pydicom import Dataset

    from pacsflow.operators.radiomics.report import FeatureRow

logger = logging.getLogger(__name__)

MAX_VALUES = 100
MAX_ITEMS = 100
MAX_ITEMS_TOTAL = 1000

PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
PN_PARTS = ("Alphabetic", *PN_COMPONENTS)
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")

NUMBER_VRS = frozenset({"IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "NONE"})
_PRIVATE = "private"  # the pseudo-VR of private and unknown elements: strings

_VR_TYPES: dict[str, FieldType] = {
    **dict.fromkeys(NUMBER_VRS, FieldType.NUMBER),
    **dict.fromkeys(("ST", "LT", "UT"), FieldType.TEXT),
    **dict.fromkeys(
        ("AE", "AS", "AT", "CS", "LO", "SH", "TM", "UC", "UI", "UR"), FieldType.KEYWORD
    ),
    "DA": FieldType.DATE,
    "DT": FieldType.DATETIME,
    "PN": FieldType.PERSON_NAME,
    "SQ": FieldType.OBJECT,
    _PRIVATE: FieldType.KEYWORD,
}

# Top-level fields copied from the representative instance's tags.
_HEADER_FIELDS = (
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyDescription",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesDate",
    "Manufacturer",
)

# Tags read from the DICOM JSON, as its keys spell them.
_SOP_CLASS_UID = "00080016"
_SOP_INSTANCE_UID = "00080018"
_STUDY_DATE, _STUDY_TIME = "00080020", "00080030"
_ACQUISITION_DATE, _ACQUISITION_TIME = "00080022", "00080032"
_ACQUISITION_DATETIME = "0008002A"
_TIMEZONE_OFFSET = "00080201"
_FRAME_ACQUISITION_DATETIME = "00189074"
_INSTANCE_NUMBER = "00200013"
_IMAGE_POSITION, _IMAGE_ORIENTATION = "00200032", "00200037"
_FRAME_CONTENT = "00209111"
_PLANE_POSITION, _PLANE_ORIENTATION = "00209113", "00209116"
_SHARED_GROUPS, _PER_FRAME_GROUPS = "52009229", "52009230"
_SEGMENT_SEQUENCE, _SEGMENT_LABEL = "00620002", "00620005"
_STRUCTURE_SET_ROIS, _ROI_NAME = "30060020", "30060026"

_DA = re.compile(r"(\d{4})[.-]?(\d{2})[.-]?(\d{2})")
_TM = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?")
_OLD_TM = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?")
_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})")
_UNSAFE_KEY = re.compile(r"[^0-9A-Za-z]+")
_UNIT_KEYS = {"%": "percent", "1": ""}


# ------------------------------------------------------------------------- documents


def series_document(
    metadata: Sequence[dict[str, Any]],
    *,
    source: Mapping[str, str] | None = None,
    arrived_at: datetime | None = None,
    modalities_in_study: Sequence[str] = (),
    project: Sequence[str] = (),
    radiomics: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """The search document of the series whose instances' DICOM JSON is ``metadata``.

    ``source`` is the dispatcher's ``source`` (``kind``, ``calling_ae``); ``arrived_at`` the
    newest arrival (naive means UTC); ``radiomics`` feature values as from
    :func:`radiomics_values`. Odd values never raise; ValueError only when there is no
    instance or the representative one has no Series Instance UID to index it by.
    """
    instances = [instance for instance in metadata if isinstance(instance, dict)]
    if not instances:
        raise ValueError("a series document needs the metadata of at least one instance")
    representative = representative_instance(instances)
    tags = TagReader().dataset(representative)
    if not isinstance(tags.get("SeriesInstanceUID"), str):
        raise ValueError("the representative instance has no SeriesInstanceUID")
    fields: dict[str, Any] = {name: _header_field(name, tags.get(name)) for name in _HEADER_FIELDS}
    fields["StudyDateTime"] = _study_datetime(representative)
    fields["ModalitiesInStudy"] = _distinct([*_listed(modalities_in_study), fields["Modality"]])
    fields["SOPClassUIDs"] = _distinct(_first(i, _SOP_CLASS_UID) for i in instances)
    fields["NumberOfInstances"] = len(instances)
    fields.update(_summaries(instances))
    fields.update(_origin(source or {}, arrived_at, project))
    fields["AnnotationLabels"] = annotation_labels(instances)
    fields["radiomics"] = _radiomics_field(radiomics or {})
    fields["tags"] = tags
    return {name: fields[name] for name in FIELDS if fields.get(name) not in (None, [], {})}


def representative_instance(instances: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The middle instance by Instance Number, then SOP Instance UID (the lower of two)."""

    def order(instance: dict[str, Any]) -> tuple[float, str]:
        number = _number(_first(instance, _INSTANCE_NUMBER))
        uid = _first(instance, _SOP_INSTANCE_UID)
        return (
            number if isinstance(number, int | float) else math.inf,
            uid if isinstance(uid, str) else "",
        )

    ordered = sorted(instances, key=order)
    return ordered[(len(ordered) - 1) // 2]


def annotation_labels(instances: Iterable[dict[str, Any]]) -> list[str]:
    """SEG segment labels and RTSTRUCT ROI names of the instances, distinct and sorted."""
    labels = []
    for instance in instances:
        for item in _items(instance, _SEGMENT_SEQUENCE):
            labels.append(_first(item, _SEGMENT_LABEL))
        for item in _items(instance, _STRUCTURE_SET_ROIS):
            labels.append(_first(item, _ROI_NAME))
    return _distinct(labels)


def slice_positions(instance: dict[str, Any]) -> list[float]:
    """Positions (mm) of the instance's image or frames along their slice normal."""
    position = _vector(instance, _IMAGE_POSITION, 3)
    orientation = _vector(instance, _IMAGE_ORIENTATION, 6)
    if position is not None and orientation is not None:
        return _projected(position, orientation)
    shared = _items(instance, _SHARED_GROUPS)
    shared_orientation = _plane_orientation(shared[0]) if shared else None
    positions = []
    for frame in _items(instance, _PER_FRAME_GROUPS):
        plane = _items(frame, _PLANE_POSITION)
        position = _vector(plane[0], _IMAGE_POSITION, 3) if plane else None
        orientation = _plane_orientation(frame) or shared_orientation
        if position is not None and orientation is not None:
            positions.extend(_projected(position, orientation))
    return positions


def acquisition_datetimes(instance: dict[str, Any]) -> list[datetime]:
    """When the instance, or else each of its frames, was acquired."""
    zone = _timezone(instance)
    value = _first(instance, _ACQUISITION_DATETIME)
    if not isinstance(value, str):
        value = _joined(_first(instance, _ACQUISITION_DATE), _first(instance, _ACQUISITION_TIME))
    moment = _datetime(value, zone) if isinstance(value, str) else None
    if moment is not None:
        return [moment]
    moments = []
    for frame in _items(instance, _PER_FRAME_GROUPS):
        content = _items(frame, _FRAME_CONTENT)
        value = _first(content[0], _FRAME_ACQUISITION_DATETIME) if content else None
        moment = _datetime(value, zone) if isinstance(value, str) else None
        if moment is not None:
            moments.append(moment)
    return moments


def _summaries(instances: Sequence[dict[str, Any]]) -> dict[str, Any]:
    positions = [p for instance in instances for p in slice_positions(instance)]
    moments = [m for instance in instances for m in acquisition_datetimes(instance)]
    summary: dict[str, Any] = {}
    if positions:
        summary["SlicePositionMin"], summary["SlicePositionMax"] = min(positions), max(positions)
    if moments:
        # a naive time sorts as if it were UTC; there is nothing better to compare it with
        earliest = min(moments, key=_as_utc)
        latest = max(moments, key=_as_utc)
        summary["AcquisitionDateTimeMin"] = iso_datetime(earliest)
        summary["AcquisitionDateTimeMax"] = iso_datetime(latest)
    return summary


def _origin(
    source: Mapping[str, str], arrived_at: datetime | None, project: Sequence[str]
) -> dict[str, Any]:
    return {
        "SourceKind": str(source.get("kind") or "").strip() or None,
        "SourceAE": str(source.get("calling_ae") or "").strip() or None,
        "ArrivedAt": iso_datetime(_as_utc(arrived_at)) if arrived_at else None,
        "Project": _distinct(_listed(project)),
    }


def _header_field(name: str, value: Any) -> Any:
    """``value`` from tags if it has the field's type (the first of several), else None."""
    if isinstance(value, list):
        value = value[0]
    field_type = FIELDS[name]
    if field_type is FieldType.NUMBER:
        return value if isinstance(value, int | float) else None
    if field_type is FieldType.PERSON_NAME:
        return value if isinstance(value, dict) else None
    if not isinstance(value, str):
        return None
    if field_type is FieldType.DATE:
        try:
            date.fromisoformat(value)
        except ValueError:
            return None
    return value


def _study_datetime(instance: dict[str, Any]) -> str | None:
    value = _joined(_first(instance, _STUDY_DATE), _first(instance, _STUDY_TIME))
    moment = _datetime(value, _timezone(instance)) if value else None
    return iso_datetime(moment) if moment else None


def _radiomics_field(radiomics: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    field = {}
    for name, values in radiomics.items():
        numbers = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
        if numbers and "." not in name:
            field[name] = numbers
    return field


# --------------------------------------------------------------------------- tags


class TagReader:
    """Turns DICOM JSON datasets into typed ``tags`` objects, within one item budget."""

    def __init__(self) -> None:
        self.items_left = MAX_ITEMS_TOTAL

    def dataset(self, dataset: dict[str, Any], zone: timezone | None = None) -> dict[str, Any]:
        """The typed elements of ``dataset``; ``zone`` is the instance's UTC offset."""
        zone = _timezone(dataset) or zone
        result = {}
        for tag, element in dataset.items():
            try:
                entry = self._element(str(tag).upper(), element, zone)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                logger.debug("element %s left out of the document: %s", tag, type(exc).__name__)
                continue
            if entry is not None:
                result[entry[0]] = entry[1]
        return result

    def _element(self, tag: str, element: Any, zone: timezone | None) -> tuple[str, Any] | None:
        if not isinstance(element, dict) or "Value" not in element:
            return None  # bulk data, inline binary, or no value
        key, vr = _key_and_vr(tag, element.get("vr"))
        values = element["Value"]
        if vr is None or not isinstance(values, list):
            return None
        if _is_sequence(vr, element):
            items = self._items(values, zone)
            return (key, items) if items else None
        if len(values) > MAX_VALUES:
            logger.debug("element %s has %d values; left out of the document", tag, len(values))
            return None
        typed = [
            v for v in (typed_value(vr, value, zone) for value in values) if v not in (None, "")
        ]
        if not typed:
            return None
        return key, typed[0] if len(typed) == 1 else typed

    def _items(self, values: list[Any], zone: timezone | None) -> list[dict[str, Any]]:
        if len(values) > MAX_ITEMS:
            logger.debug("a sequence of %d items keeps its first %d", len(values), MAX_ITEMS)
        items = []
        for value in values[:MAX_ITEMS]:
            if self.items_left <= 0:
                logger.debug("sequence items past %d left out of the document", MAX_ITEMS_TOTAL)
                break
            if isinstance(value, dict):
                self.items_left -= 1
                item = self.dataset(value, zone)
                if item:
                    items.append(item)
        return items


def _key_and_vr(tag: str, json_vr: Any) -> tuple[str, str | None]:
    """The document key of an element and the VR to type it by (None: leave it out)."""
    number = int(tag, 16)
    if len(tag) != 8 or number & 0xFFFF == 0:  # group lengths say nothing
        return tag, None
    entry = DicomDictionary.get(number)
    if number >> 16 & 1 or entry is None or not entry[4]:
        return tag, None if json_vr == "SQ" else _PRIVATE
    options = str(entry[0]).split(" or ")
    vr = json_vr if json_vr in options else options[0]
    return entry[4], None if vr in BINARY_VRS else vr


def _is_sequence(vr: str, element: dict[str, Any]) -> bool:
    if vr == "SQ":
        return True
    if element.get("vr") == "SQ":  # a sequence where the dictionary has none: leave it out
        raise TypeError("sequence where the dictionary expects a value")
    return False


def typed_value(vr: str, value: Any, zone: timezone | None = None) -> Any:
    """One DICOM JSON value as the document holds it (see the module's docstring)."""
    if value is None:
        return None
    if vr == "PN":
        return person_name(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN has no place in JSON
    if vr == _PRIVATE:
        if isinstance(value, dict):  # a private PN
            return next((str(value[g]) for g in _PN_GROUPS if value.get(g)), None)
        return str(value).strip()
    if vr in NUMBER_VRS:
        return _number(value)
    text = str(value).strip(" \x00") if not isinstance(value, dict) else None
    if not text:
        return None
    if vr == "DA":
        return iso_date(text) or text
    if vr == "TM":
        return iso_time(text) or text
    if vr == "DT":
        moment = _datetime(text, zone)
        return iso_datetime(moment) if moment else text
    if vr == "AT":
        return text.upper()
    return text


def person_name(value: Any) -> dict[str, str] | None:
    """A PN value's name and non-empty components, from its first non-empty group."""
    groups = {"Alphabetic": value} if isinstance(value, str) else value
    if not isinstance(groups, dict):
        return None
    text = next(
        (str(groups[g]).rstrip("^ ") for g in _PN_GROUPS if str(groups.get(g) or "").strip("^ ")),
        None,
    )
    if text is None:
        return None
    name = {"Alphabetic": text}
    for component, part in zip(PN_COMPONENTS, text.split("^"), strict=False):
        if part.strip():
            name[component] = part.strip()
    return name


def _number(value: Any) -> int | float | str | None:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


# ------------------------------------------------------------------ dates and times


def iso_date(text: str) -> str | None:
    """A DA (or the old ``YYYY.MM.DD``) as ``YYYY-MM-DD``; None if it is not a date."""
    match = _DA.fullmatch(text)
    if not match:
        return None
    try:
        return date(*(int(part) for part in match.groups())).isoformat()
    except ValueError:
        return None


def iso_time(text: str) -> str | None:
    """A TM (or the old ``HH:MM:SS``) as ``HH:MM:SS[.f]``; None if it is not a time."""
    if _OLD_TM.fullmatch(text):
        text = text.replace(":", "")
    match = _TM.fullmatch(text)
    if not match:
        return None
    hour, minute, second, fraction = match.groups()
    minute, second, fraction = minute or "00", second or "00", (fraction or "").rstrip("0")
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return None
    return f"{hour}:{minute}:{second}" + (f".{fraction}" if fraction else "")


def iso_datetime(moment: datetime) -> str:
    """UTC with ``Z`` if the moment knows its offset, else the naive local time as is."""
    if moment.tzinfo is None:
        return moment.isoformat(timespec="microseconds")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _datetime(text: str, zone: timezone | None) -> datetime | None:
    """A DT (its own offset, else ``zone``); missing parts are the start of the period."""
    match = _DT.fullmatch(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),  # a leap second is the second before it
            int((fraction or "0").ljust(6, "0")),
            tzinfo=_offset(offset) if offset else zone,
        )
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # out of range near year 1 or 9999
    except (ValueError, OverflowError):
        return None
    return moment


def _timezone(instance: dict[str, Any]) -> timezone | None:
    value = _first(instance, _TIMEZONE_OFFSET)
    return _offset(value.strip()) if isinstance(value, str) else None


def _offset(text: str) -> timezone | None:
    match = _OFFSET.fullmatch(text)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) > 59:
        return None
    return timezone(-delta if sign == "-" else delta)


def _joined(day: Any, time: Any) -> str | None:
    """A DA and a TM as one DT string; None without both."""
    if not isinstance(day, str) or not isinstance(time, str):
        return None
    day, time = day.strip().replace(".", ""), time.strip()
    if _OLD_TM.fullmatch(time):
        time = time.replace(":", "")
    return day + time if day and time else None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --------------------------------------------------------------------- DICOM JSON


def _first(dataset: dict[str, Any], tag: str) -> Any:
    """The first value of an element, or None."""
    element = dataset.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return values[0] if isinstance(values, list) and values else None


def _items(dataset: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    element = dataset.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _vector(dataset: dict[str, Any], tag: str, size: int) -> list[float] | None:
    element = dataset.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or len(values) != size:
        return None
    numbers = [_number(v) for v in values]
    if not all(isinstance(n, int | float) for n in numbers):
        return None
    return [float(n) for n in numbers if isinstance(n, int | float)]


def _plane_orientation(groups: dict[str, Any]) -> list[float] | None:
    plane = _items(groups, _PLANE_ORIENTATION)
    return _vector(plane[0], _IMAGE_ORIENTATION, 6) if plane else None


def _projected(position: list[float], orientation: list[float]) -> list[float]:
    (rx, ry, rz), (cx, cy, cz) = orientation[:3], orientation[3:]
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    length = math.sqrt(sum(n * n for n in normal))
    if not length:
        return []
    projection = sum(p * n for p, n in zip(position, normal, strict=True)) / length
    return [projection] if math.isfinite(projection) else []  # NaN has no place in JSON


def _listed(values: Sequence[str] | str) -> Sequence[str]:
    """A lone string as a list of one (the run conf's ``project`` is one), not its letters."""
    return [values] if isinstance(values, str) else values


def _distinct(values: Iterable[Any]) -> list[str]:
    return sorted({v.strip() for v in values if isinstance(v, str) and v.strip()})


# ---------------------------------------------------------------------- radiomics


def radiomics_values(sr_datasets: Iterable[Dataset]) -> dict[str, list[float]]:
    """Feature values of TID 1500 reports: pyradiomics key -> values, one per region.

    Reports by other tools: a measurement that occurs once in its region is kept under its
    code meaning and unit made path-safe (``Volume_ml``); a concept repeated in a region is
    qualified by derivations or modifiers the reader does not return (SUVbw mean, max, peak)
    and would mix quantities, so it is left out. A dataset that is no such report is skipped.
    """
    values: dict[str, list[float]] = {}
    for sr in sr_datasets:
        for name, value in _report_values(sr):
            values.setdefault(name, []).append(value)
    return values


def _report_values(sr: Dataset) -> Iterator[tuple[str, float]]:
    from pacsflow.operators.radiomics.model import RadiomicsError
    from pacsflow.operators.radiomics.report import read_measurement_report

    try:
        rows = read_measurement_report(sr)
    except (RadiomicsError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        logger.debug(
            "SR %s has no radiomics to index: %s", sr.get("SOPInstanceUID"), type(exc).__name__
        )
        return
    concepts = Counter(_concept(row) for row in rows if row.feature is None)
    for row in rows:
        if row.value is None or not math.isfinite(row.value):
            continue
        if row.feature is not None:
            yield row.feature, row.value
        elif row.code_meaning and concepts[_concept(row)] == 1:
            yield _foreign_key(row.code_meaning, row.unit), row.value


def _concept(row: FeatureRow) -> tuple[str, str | None, str | None]:
    return row.tracking_uid or row.region_label, row.code_value, row.coding_scheme


def _foreign_key(meaning: str, unit: str | None) -> str:
    name = _UNSAFE_KEY.sub("_", meaning).strip("_")
    unit = _UNIT_KEYS.get(unit or "1", unit) or ""
    unit = _UNSAFE_KEY.sub("_", unit).strip("_")
    return f"{name}_{unit}" if unit else name


# ------------------------------------------------------------------ field types


def document_field_type(path: str) -> FieldType | None:
    """How the backends compare the field at a dotted path; None if documents have none.

    Top-level fields as FIELDS says; a person name's parts (``PatientName.FamilyName``,
    ``.Alphabetic``) are PERSON_NAME too: exact or wildcard, case- and accent-blind, the
    path's last part saying which string. ``tags.X`` by keyword X's VR in the dictionary
    (sequences OBJECT, nested keywords below them); a private or unknown tag ``tags.00091001``
    is KEYWORD (never a sequence). ``radiomics.<feature>`` is NUMBER.
    """
    head, _, rest = path.partition(".")
    field_type = FIELDS.get(head)
    if field_type is None or not rest:
        return field_type
    if field_type is FieldType.PERSON_NAME:
        return field_type if rest in PN_PARTS else None
    if head == "radiomics":
        return FieldType.NUMBER if "." not in rest else None
    if head == "tags":
        return _tag_path_type(rest.split("."))
    return None


def _tag_path_type(parts: list[str]) -> FieldType | None:
    vr: str | None = None
    for part in parts:
        if vr == "PN":
            return FieldType.PERSON_NAME if part in PN_PARTS and part == parts[-1] else None
        if vr is not None and vr != "SQ":
            return None  # only sequences (and person names) have parts
        vr = _path_vr(part)
        if vr is None:
            return None
    return _VR_TYPES.get(vr) if vr else None


def _path_vr(part: str) -> str | None:
    """The VR a document key is typed by: a keyword's, or private for an unknown tag."""
    if part in keyword_dict:
        vr = str(DicomDictionary[keyword_dict[part]][0]).split(" or ")[0]
        return None if vr in BINARY_VRS else vr
    if re.fullmatch(r"[0-9A-F]{8}", part):
        entry = DicomDictionary.get(int(part, 16))
        return _PRIVATE if entry is None or not entry[4] or int(part[:4], 16) & 1 else None
    return None
