"""Transfer syntaxes grouped by family: what the receiver accepts and WADO labels by."""

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

UNCOMPRESSED: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
DEFLATED: tuple[UID, ...] = (DeflatedExplicitVRLittleEndian,)
JPEG: tuple[UID, ...] = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1)
JPEG_LS: tuple[UID, ...] = (JPEGLSLossless, JPEGLSNearLossless)
JPEG_2000: tuple[UID, ...] = (JPEG2000Lossless, JPEG2000)
JPEG_2000_MULTICOMPONENT: tuple[UID, ...] = (JPEG2000MCLossless, JPEG2000MC)
HTJ2K_FAMILY: tuple[UID, ...] = (HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)
RLE: tuple[UID, ...] = (RLELossless,)
MPEG2: tuple[UID, ...] = (MPEG2MPML, MPEG2MPMLF, MPEG2MPHL, MPEG2MPHLF)
MPEG4: tuple[UID, ...] = (
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
)
HEVC: tuple[UID, ...] = (HEVCMP51, HEVCM10P51)
VIDEO: tuple[UID, ...] = MPEG2 + MPEG4 + HEVC
