"""Presentation contexts per association, and what a destination must look like."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from pacsflow.operators.client import PacsflowClient
from pacsflow.operators.cstore import (
    MAX_PRESENTATION_CONTEXTS,
    Destination,
    StoredFile,
    association_batches,
)
from pacsflow.operators.forward import forward_to_ae


def stored(sop_class: str, syntax: str = ExplicitVRLittleEndian) -> StoredFile:
    uid = generate_uid()
    return StoredFile(Path(f"{uid}.dcm"), UID(sop_class), uid, UID(syntax))


def test_batches_hold_at_most_128_contexts() -> None:
    classes = [generate_uid() for _ in range(MAX_PRESENTATION_CONTEXTS + 1)]
    files = [stored(sop_class) for sop_class in classes]
    files += [stored(classes[0]), stored(classes[-1]), stored(classes[0], JPEG2000Lossless)]
    first, second = association_batches(files)
    assert len({f.context_key for f in first}) == MAX_PRESENTATION_CONTEXTS
    assert [f.sop_class_uid for f in second] == [classes[-1], classes[-1], classes[0]]
    assert files[-3] in first, "a file whose context is already proposed joins that batch"


def test_one_batch_for_a_usual_series() -> None:
    files = [stored("1.2.840.10008.5.1.4.1.1.2") for _ in range(500)]
    assert association_batches(files) == [files]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("", "h", 104), "Destination.ae_title '' is not a valid AE title"),
        (("A" * 17, "h", 104), "ae_title"),
        (("A\\B", "h", 104), "ae_title"),
        (("DEST", " ", 104), "Destination.host is empty"),
        (("DEST", "h", 0), "Destination.port 0"),
        (("DEST", "h", 65536), "Destination.port 65536"),
    ],
)
def test_destination_refuses(arguments: tuple[str, str, int], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Destination(*arguments)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"calling_ae": "FAR TOO LONG AE TITLE"}, "calling_ae"),
        ({"retries": -1}, "retries"),
        ({"backoff": -1.0}, "backoff"),
        ({"timeout": 0.0}, "timeout"),
    ],
)
def test_forward_checks_arguments_before_any_request(
    options: dict[str, object], problem: str
) -> None:
    arguments: dict[str, object] = {"calling_ae": "PACSFLOW", **options}
    with (
        PacsflowClient("http://127.0.0.1:9", token="t", retries=0) as client,
        pytest.raises(ValueError, match=problem),
    ):
        forward_to_ae(client, "1.2", "1.2.3", Destination("D", "h", 104), **arguments)  # type: ignore[arg-type]
