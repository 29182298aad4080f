"""A query or retrieve identifier, decoded before anything relies on it."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacsflow.receiver.status import RequestFailure

logger = logging.getLogger(__name__)


def decoded_identifier(event: Event, status: int, service: str) -> Dataset:
    """The request's identifier with every element converted now, so that an undecodable
    one is refused with ``status`` at the start rather than failing halfway through."""
    try:
        identifier = event.identifier
        for _ in identifier:
            pass
    except Exception as error:  # noqa: BLE001 - any decoding error is the peer's identifier
        logger.info("%s identifier cannot be decoded: %s", service, type(error).__name__)
        raise RequestFailure(
            status, "The identifier cannot be decoded; check its encoding"
        ) from None
    return identifier
