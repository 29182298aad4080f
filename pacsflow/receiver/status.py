"""Failure statuses with an ErrorComment, answered the same way by every DIMSE handler."""

from __future__ import annotations

from pydicom.dataset import Dataset

ERROR_COMMENT_MAX = 64  # ErrorComment (0000,0902) is LO: at most 64 characters


def error_comment(message: str) -> str:
    """An ErrorComment value: LO, so 64 characters of the default repertoire, no backslash."""
    text = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in message)
    return text[:ERROR_COMMENT_MAX]


def failure_status(status: int, comment: str, tag: int | None = None) -> Dataset:
    """The status data set pynetdicom sends: Status, ErrorComment, OffendingElement."""
    ds = Dataset()
    ds.Status = int(status)
    ds.ErrorComment = error_comment(comment)
    if tag is not None:
        ds.OffendingElement = [tag]
    return ds


class RequestFailure(Exception):
    """A request an SCP refuses; becomes a failure status with an ErrorComment."""

    def __init__(self, status: int, comment: str, tag: int | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment
        self.tag = tag

    def status_dataset(self) -> Dataset:
        return failure_status(self.status, self.comment, self.tag)
