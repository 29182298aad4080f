"""Which transfer syntaxes the receiver accepts for storage, and how proposals are narrowed.

The archive keeps objects exactly as received, so it accepts every transfer syntax whose
data set pydicom can parse to index the header: the uncompressed ones, deflate, and every
encapsulated pixel-data syntax (the pixel data is never decoded). JPIP referenced syntaxes
(pixel data elsewhere) and the SMPTE ST 2110 syntaxes are left out on purpose.
"""

from __future__ import annotations

from pydicom.uid import (
    HEVCM10P51,
    HEVCMP51,
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    MPEG2MPHL,
    MPEG2MPHLF,
    MPEG2MPML,
    MPEG2MPMLF,
    MPEG4HP41,
    MPEG4HP41BD,
    MPEG4HP41BDF,
    MPEG4HP41F,
    MPEG4HP42STEREO,
    MPEG4HP42STEREOF,
    MPEG4HP422D,
    MPEG4HP422DF,
    MPEG4HP423D,
    MPEG4HP423DF,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import sop_class
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import StorageServiceClass

VERIFICATION_SOP_CLASS = UID("1.2.840.10008.1.1")

UNCOMPRESSED_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
"""Also what C-ECHO accepts."""

DEFLATED_TRANSFER_SYNTAXES: tuple[UID, ...] = (DeflatedExplicitVRLittleEndian,)

JPEG_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
)

JPEG_LS_TRANSFER_SYNTAXES: tuple[UID, ...] = (JPEGLSLossless, JPEGLSNearLossless)

JPEG_2000_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEG2000Lossless,
    JPEG2000,
    JPEG2000MCLossless,
    JPEG2000MC,
)

HTJ2K_TRANSFER_SYNTAXES: tuple[UID, ...] = (HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)

RLE_TRANSFER_SYNTAXES: tuple[UID, ...] = (RLELossless,)

VIDEO_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    MPEG2MPML,
    MPEG2MPMLF,
    MPEG2MPHL,
    MPEG2MPHLF,
    MPEG4HP41,
    MPEG4HP41F,
    MPEG4HP41BD,
    MPEG4HP41BDF,
    MPEG4HP422D,
    MPEG4HP422DF,
    MPEG4HP423D,
    MPEG4HP423DF,
    MPEG4HP42STEREO,
    MPEG4HP42STEREOF,
    HEVCMP51,
    HEVCM10P51,
)

STORABLE_TRANSFER_SYNTAXES: frozenset[UID] = frozenset(
    UNCOMPRESSED_TRANSFER_SYNTAXES
    + DEFLATED_TRANSFER_SYNTAXES
    + JPEG_TRANSFER_SYNTAXES
    + JPEG_LS_TRANSFER_SYNTAXES
    + JPEG_2000_TRANSFER_SYNTAXES
    + HTJ2K_TRANSFER_SYNTAXES
    + RLE_TRANSFER_SYNTAXES
    + VIDEO_TRANSFER_SYNTAXES
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
