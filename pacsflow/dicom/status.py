"""Status codes shared by DIMSE responses and STOW-RS FailureReason (PS3.4 Annex B, PS3.18)."""

from __future__ import annotations

from enum import IntEnum


class StoreStatus(IntEnum):
    """Storage Service statuses; STOW-RS reports failures with the same codes."""

    SUCCESS = 0x0000
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NOT_AUTHORIZED = 0x0124
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    COERCION_OF_DATA_ELEMENTS = 0xB000
    ELEMENTS_DISCARDED = 0xB006
