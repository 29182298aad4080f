"""Which transfer syntaxes the receiver accepts for storage, and how proposals are narrowed.

The archive keeps objects exactly as received, so it accepts every transfer syntax whose
data set pydicom can parse to index the header: the uncompressed ones, deflate, and every
encapsulated pixel-data syntax (the pixel data is never decoded). JPIP referenced syntaxes
(pixel data elsewhere) and the SMPTE ST 2110 syntaxes are left out on purpose.
"""

from __future__ import annotations

from pydicom.uid import UID
from pynetdicom import sop_class
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import StorageServiceClass

from pacsflow.dicom import transfer_syntax

VERIFICATION_SOP_CLASS = UID("1.2.840.10008.1.1")

UNCOMPRESSED_TRANSFER_SYNTAXES = transfer_syntax.UNCOMPRESSED
"""Also what C-ECHO accepts."""

STORABLE_TRANSFER_SYNTAXES: frozenset[UID] = frozenset(
    transfer_syntax.UNCOMPRESSED
    + transfer_syntax.DEFLATED
    + transfer_syntax.JPEG
    + transfer_syntax.JPEG_LS
    + transfer_syntax.JPEG_2000
    + transfer_syntax.JPEG_2000_MULTICOMPONENT
    + transfer_syntax.HTJ2K_FAMILY
    + transfer_syntax.RLE
    + transfer_syntax.VIDEO
)


def is_storage_like(abstract_syntax: str) -> bool:
    """Whether pynetdicom's unrestricted storage service treats this SOP class as storage.

    Mirrors ``pynetdicom.presentation.negotiate_unrestricted``: a storage SOP class, a
    private one, or one pynetdicom does not know (a storage class newer than pynetdicom).
    """
    uid = UID(abstract_syntax)
    if uid.is_private or sop_class.uid_to_service_class(uid) is StorageServiceClass:
        return True
    return not hasattr(sop_class, uid.keyword)


def restrict_storage_contexts(proposed: list[PresentationContext]) -> int:
    """Narrow proposed storage contexts to storable transfer syntaxes, in the sender's order.

    pynetdicom's unrestricted storage negotiation accepts the first proposed transfer
    syntax whatever it is; narrowing the proposal first makes it pick a storable one. A
    context with no storable syntax is relabelled Verification, which the AE supports only
    with uncompressed syntaxes, so pynetdicom rejects it with the right reason
    (transfer-syntaxes-not-supported). Returns how many contexts were rejected this way.
    """
    rejected = 0
    for context in proposed:
        if not is_storage_like(str(context.abstract_syntax)):
            continue
        storable = [ts for ts in context.transfer_syntax if ts in STORABLE_TRANSFER_SYNTAXES]
        if storable:
            context.transfer_syntax = list(storable)
        else:
            context.abstract_syntax = VERIFICATION_SOP_CLASS
            rejected += 1
    return rejected
