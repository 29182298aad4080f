"""ForwardReport counts and retry decisions, without peers."""

from __future__ import annotations

import json

import pytest

from pacsflow.dicom.status import StoreStatus
from pacsflow.operators.report import ForwardReport, Outcome, SendFailure, is_transient

NO_ASSOCIATION = SendFailure("no association with X@h:1", transient=True)
NOT_ACCEPTED = SendFailure("X@h:1 does not accept SOP Class ...", transient=False)


def test_counts_and_summary() -> None:
    report = ForwardReport("X@h:1", "1.2", "1.2.3", attempts=2)
    report.outcomes = {
        "1": StoreStatus.SUCCESS,
        "2": StoreStatus.COERCION_OF_DATA_ELEMENTS,
        "3": StoreStatus.OUT_OF_RESOURCES,
        "4": NO_ASSOCIATION,
    }
    assert (report.succeeded, report.warnings, report.failed) == (["1"], ["2"], ["3", "4"])
    summary = json.loads(json.dumps(report.as_dict()))
    assert summary == {
        "destination": "X@h:1",
        "study_instance_uid": "1.2",
        "series_instance_uid": "1.2.3",
        "attempts": 2,
        "succeeded": 1,
        "warnings": 1,
        "failed": 2,
        "results": {"1": 0, "2": 0xB000, "3": 0xA700, "4": NO_ASSOCIATION.message},
    }


@pytest.mark.parametrize(
    ("outcome", "transient"),
    [
        (StoreStatus.OUT_OF_RESOURCES, True),
        (0xA7FF, True),
        (StoreStatus.PROCESSING_FAILURE, True),
        (StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS, False),
        (StoreStatus.CANNOT_UNDERSTAND, False),
        (StoreStatus.SOP_CLASS_NOT_SUPPORTED, False),
        (StoreStatus.DUPLICATE_SOP_INSTANCE, False),
        (StoreStatus.SUCCESS, False),
        (NO_ASSOCIATION, True),
        (NOT_ACCEPTED, False),
    ],
)
def test_what_is_retried(outcome: Outcome, transient: bool) -> None:
    assert is_transient(outcome) is transient
