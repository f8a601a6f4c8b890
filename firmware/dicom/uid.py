"""UIDs: the transfer syntaxes and SOP classes modgate uses (PS3.6 Annex A),
modgate's implementation identity (PS3.7 D.3.3.2) and UID generation (PS3.5 9).
"""

from firmware.compat import urandom
from firmware.compat import all_digits

# PS3.5 10 / PS3.6 Table A-1: transfer syntaxes.
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG_BASELINE_8BIT = "1.2.840.10008.1.2.4.50"

# Transfer syntaxes whose Pixel Data is encapsulated (PS3.5 A.4).
# PS3.5 8.2.8 / PS3.6 Table A-1: MPEG-4 AVC/H.264, the whole bitstream in
# the Pixel Data's one fragment (PS3.5 A.4).
MPEG4_AVC_HP41 = "1.2.840.10008.1.2.4.102"  # High Profile / Level 4.1
MPEG4_AVC_HP41_BD = "1.2.840.10008.1.2.4.103"  # BD-compatible High Profile / Level 4.1
MPEG4_AVC_HP42_2D = "1.2.840.10008.1.2.4.104"  # High Profile / Level 4.2 For 2D Video
VIDEO_BITSTREAMS = (MPEG4_AVC_HP41, MPEG4_AVC_HP41_BD, MPEG4_AVC_HP42_2D)
ENCAPSULATED = (JPEG_BASELINE_8BIT,) + VIDEO_BITSTREAMS

# PS3.4 B.5: Storage SOP classes of the objects modgate creates.
MULTIFRAME_GRAYSCALE_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
MULTIFRAME_GRAYSCALE_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
MULTIFRAME_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"
VL_ENDOSCOPIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.1"
VIDEO_ENDOSCOPIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
VIDEO_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4.1"

VERIFICATION = "1.2.840.10008.1.1"  # PS3.4 A.4
# PS3.4 K.6.1: Modality Worklist Information Model - FIND.
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
# PS3.4 F.7.3: Modality Performed Procedure Step SOP Class.
MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"
# PS3.4 J.3.5 / J.6: Storage Commitment Push Model SOP Class and its
# well-known SOP Instance.
STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"

# PS3.22 / PS3.6 Table A-1: the real-time communication SOP classes and the
# transfer syntax of a ST 2110-20 progressive video flow.
VIDEO_ENDOSCOPIC_IMAGE_RTC = "1.2.840.10008.10.1"
VIDEO_PHOTOGRAPHIC_IMAGE_RTC = "1.2.840.10008.10.2"
SMPTE_ST2110_20_PROGRESSIVE = "1.2.840.10008.1.2.7.1"

# PS3.6 Table A-1 / PS3.3 C.7.4.2.1.1: the well-known Synchronization Frame
# of Reference of equipment synchronized to UTC.
UTC_SYNCHRONIZATION_FRAME_OF_REFERENCE = "1.2.840.10008.15.1.1"

# PS3.6 Table A-1: the names of the UIDs above, for the Conformance
# Statement (tools/conformance.py) and messages.
UID_NAMES = {
    IMPLICIT_VR_LITTLE_ENDIAN: "Implicit VR Little Endian",
    EXPLICIT_VR_LITTLE_ENDIAN: "Explicit VR Little Endian",
    JPEG_BASELINE_8BIT: "JPEG Baseline (Process 1)",
    MPEG4_AVC_HP41: "MPEG-4 AVC/H.264 High Profile / Level 4.1",
    MPEG4_AVC_HP41_BD: "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
    MPEG4_AVC_HP42_2D: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video",
    MULTIFRAME_GRAYSCALE_BYTE_SC: "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    MULTIFRAME_GRAYSCALE_WORD_SC: "Multi-frame Grayscale Word Secondary Capture Image Storage",
    MULTIFRAME_TRUE_COLOR_SC: "Multi-frame True Color Secondary Capture Image Storage",
    VL_ENDOSCOPIC_IMAGE: "VL Endoscopic Image Storage",
    VIDEO_ENDOSCOPIC_IMAGE: "Video Endoscopic Image Storage",
    VIDEO_PHOTOGRAPHIC_IMAGE: "Video Photographic Image Storage",
    VERIFICATION: "Verification SOP Class",
    MODALITY_WORKLIST_FIND: "Modality Worklist Information Model - FIND",
    MODALITY_PERFORMED_PROCEDURE_STEP: "Modality Performed Procedure Step SOP Class",
    STORAGE_COMMITMENT_PUSH_MODEL: "Storage Commitment Push Model SOP Class",
    VIDEO_ENDOSCOPIC_IMAGE_RTC: "Video Endoscopic Image Real-Time Communication",
    VIDEO_PHOTOGRAPHIC_IMAGE_RTC: "Video Photographic Image Real-Time Communication",
    SMPTE_ST2110_20_PROGRESSIVE: "SMPTE ST 2110-20 Uncompressed Progressive Active Video",
    UTC_SYNCHRONIZATION_FRAME_OF_REFERENCE: "Universal Coordinated Time Synchronization Frame of Reference",
}

# modgate's Implementation Class UID: a 2.25 UUID-derived root (PS3.5 B.2)
# minted once for this implementation. The version name is an SH (<= 16).
IMPLEMENTATION_CLASS_UID = "2.25.183504716758131799061362076626867652192"
IMPLEMENTATION_VERSION_NAME = "MODGATE_0_1"

MAX_UID_LENGTH = 64  # PS3.5 9.1


def uuid4_int():
    """A random (version 4, RFC 9562) UUID as a 128-bit integer."""
    raw = bytearray(urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return int.from_bytes(bytes(raw), "big")


def generate_uid(root=None):
    """A new UID.

    Without a root: '2.25.' and the decimal of a random UUID (PS3.5 B.2).
    With an organisation root: the root, then as many decimal digits of a
    random UUID as fit in 64 characters (at least 16, so collisions stay
    as unlikely as a 53-bit random number allows).
    """
    value = uuid4_int()
    if root is None:
        return "2.25." + str(value)
    check_uid(root)
    room = MAX_UID_LENGTH - len(root) - 1
    if room < 16:
        raise ValueError("UID root %r leaves %d digits; at least 16 needed" % (root, room))
    digits = str(value)[:room]
    # PS3.5 9.1: a component has no leading zero (unless it is '0').
    if digits[0] == "0":
        digits = "1" + digits[1:]
    return root + "." + digits


def check_uid(uid):
    """Raise ValueError unless uid is a valid UID string (PS3.5 9.1)."""
    if not uid or len(uid) > MAX_UID_LENGTH:
        raise ValueError("UID must be 1 to 64 characters: %r" % (uid,))
    for part in uid.split("."):
        if not all_digits(part):
            raise ValueError("UID components are digits between dots: %r" % (uid,))
        if len(part) > 1 and part[0] == "0":
            raise ValueError("UID component with a leading zero: %r" % (uid,))
