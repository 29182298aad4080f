"""DICOM JSON (PS3.18 Annex F) of an instance, computed once at ingest.

Binary values above a small threshold, and pixel data always, become BulkDataURIs relative
to the DICOMweb root, so metadata requests neither read files nor know the host name; the
web layer prefixes the root when it answers (see :func:`with_root`). Large values deferred
by the parser are never loaded.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
INLINE_BINARY_LIMIT = 1024
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
BULKDATA_MARK = '"BulkDataURI":"'

logger = logging.getLogger(__name__)


def instance_path(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    return f"studies/{study_uid}/series/{series_uid}/instances/{sop_instance_uid}"


def dicom_json(ds: Dataset, instance: str) -> dict[str, Any]:
    """The instance's DICOM JSON; ``instance`` is its path from :func:`instance_path`."""
    return _dataset_json(ds, f"{instance}/bulkdata/")


def dumps(value: Any) -> str:
    """Compact JSON, the form :func:`with_root` relies on."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def with_root(text: str, root: str) -> str:
    """Make the relative BulkDataURIs in stored JSON absolute under ``root``."""
    return text.replace(BULKDATA_MARK, f"{BULKDATA_MARK}{root.rstrip('/')}/")


def _dataset_json(ds: Dataset, prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating ds itself would load deferred values
        key = f"{int(tag):08X}"
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
            vr = element_vr(raw)
            if vr in BULK_VRS:  # deferred by the parser: large, never loaded here
                result[key] = {"vr": vr, "BulkDataURI": prefix + key}
                continue
        element = ds[tag]
        if element.VR == "SQ":
            items = [
                _dataset_json(item, f"{prefix}{key}/{index}/")
                for index, item in enumerate(element.value)
            ]
            result[key] = {"vr": "SQ", "Value": items}  # as pydicom writes it, even if empty
        elif (
            element.VR in BULK_VRS
            and not element.is_empty
            and (tag in PIXEL_DATA_TAGS or len(element.value) > INLINE_BINARY_LIMIT)
        ):
            result[key] = {"vr": element.VR, "BulkDataURI": prefix + key}
        else:
            result[key] = _element_json(element, key)
    return result


def _element_json(element: DataElement, key: str) -> dict[str, Any]:
    """The element's JSON; a value that has none (e.g. IS "1A") is left out, not fatal.

    The object is still stored byte-exact; only its metadata lacks that one value.
    """
    try:
        return element.to_json_dict(None, INLINE_BINARY_LIMIT)
    except (ValueError, TypeError, OverflowError):
        logger.warning("element %s has a value DICOM JSON cannot hold; metadata omits it", key)
        return {"vr": element.VR}


def element_vr(element: RawDataElement | DataElement) -> str:
    """The VR of an element; implicit VR files carry none, so the dictionary says."""
    if element.VR:
        return str(element.VR)
    try:
        vr = dictionary_VR(element.tag)
    except KeyError:
        return "UN"
    return "OW" if "OW" in vr else vr  # "OB or OW", "US or OW": the binary reading
