"""What became of each instance of a forward, and which failures are worth another try.

Statuses are the Storage Service's (PS3.4 B.2.3); STOW-RS reports failures and warnings with
the same codes (PS3.18 I.2), so both ways out share this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pynetdicom.status import STATUS_SUCCESS, STATUS_WARNING, code_to_category

from pacsflow.dicom.status import StoreStatus

# Failures that say "not now" rather than "not this object": Refused: Out of Resources
# (0xA7xx) and Processing Failure (0x0110, a peer's generic answer when storage fails).
# Data set errors (0xA9xx), Cannot Understand (0xCxxx), SOP Class Not Supported (0x0122)
# and Duplicate (0x0111) would fail again and are not retried.
OUT_OF_RESOURCES = range(0xA700, 0xA800)
RETRIED_STATUSES = frozenset({*OUT_OF_RESOURCES, StoreStatus.PROCESSING_FAILURE})


@dataclass(frozen=True)
class SendFailure:
    """Why an instance got no status from the destination; ``transient`` if trying again
    may help (no association, a timeout, a 5xx answer)."""

    message: str
    transient: bool


Outcome = int | SendFailure  # a Storage Service status, or why there is none


def is_transient(outcome: Outcome) -> bool:
    if isinstance(outcome, SendFailure):
        return outcome.transient
    return outcome in RETRIED_STATUSES


def describe(outcome: Outcome) -> str:
    return outcome.message if isinstance(outcome, SendFailure) else f"0x{outcome:04X}"


@dataclass
class ForwardReport:
    """The last outcome of every instance of a series forwarded to ``destination``."""

    destination: str
    study_instance_uid: str
    series_instance_uid: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    attempts: int = 0

    def _with(self, category: str) -> list[str]:
        return [
            uid
            for uid, outcome in self.outcomes.items()
            if isinstance(outcome, int) and code_to_category(outcome) == category
        ]

    @property
    def succeeded(self) -> list[str]:
        return self._with(STATUS_SUCCESS)

    @property
    def warnings(self) -> list[str]:
        """Stored, with a warning status (e.g. 0xB000 coercion of data elements)."""
        return self._with(STATUS_WARNING)

    @property
    def failed(self) -> list[str]:
        stored = {*self.succeeded, *self.warnings}
        return [uid for uid in self.outcomes if uid not in stored]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary, e.g. an Airflow task's XCom: counts, then each
        instance's status as an int or the reason it has none."""
        return {
            "destination": self.destination,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "attempts": self.attempts,
            "succeeded": len(self.succeeded),
            "warnings": len(self.warnings),
            "failed": len(self.failed),
            "results": {
                uid: outcome.message if isinstance(outcome, SendFailure) else outcome
                for uid, outcome in self.outcomes.items()
            },
        }


__all__ = ["ForwardReport", "Outcome", "SendFailure", "describe", "is_transient"]
