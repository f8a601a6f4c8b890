"""The IODs modgate creates (PS3.3 Annex A) and the pixel formats each takes.

A table, not code: for each IOD its SOP class, modality, whether it is
multi-frame, which module family it belongs to (Secondary Capture or VL) and
the pixel formats it accepts. ``encoder.py`` turns a row into attributes.
"""

from firmware.dicom import uid

# Pixel formats: samples per pixel, Photometric Interpretation, Bits
# Allocated, Bits Stored (PS3.3 C.7.6.3). The byte layout of each is the
# acquisition side's (hal.acq): rgb8 pixel-interleaved (Planar Configuration
# 0), mono16 little endian words with 12 bits stored. ycbcr422 (UYVY, what
# HDMI bridges give) is stored only as an H.264 bitstream, whose pictures
# are YBR_PARTIAL_420 whatever the source (PS3.3 C.7.6.3.1.2, PS3.5
# 8.2.8): the values here are what the pictures decode to (three samples
# of 8 bits), used for the compression ratio.
PIXEL_FORMATS = {
    "rgb8": (3, "RGB", 8, 8),
    "mono8": (1, "MONOCHROME2", 8, 8),
    "mono16": (1, "MONOCHROME2", 16, 12),
    "ycbcr422": (3, "YBR_PARTIAL_420", 8, 8),
}
# The pixel formats stored only through a video codec (TRANSFER_SYNTAXES
# kind "h264").
CODEC_ONLY_PIXELS = ("ycbcr422",)


class IOD:
    def __init__(self, name, sop_class_uid, modality, family, multiframe, pixel_formats):
        self.name = name
        self.sop_class_uid = sop_class_uid
        self.modality = modality
        self.family = family  # "sc": PS3.3 A.8; "vl": PS3.3 A.32
        self.multiframe = multiframe
        self.pixel_formats = pixel_formats


IODS = {}
for _iod in (
    # PS3.3 A.8.3-A.8.5: Multi-frame Secondary Capture, modality "OT" unless
    # the caller knows the original modality.
    IOD("mf-grayscale-byte-sc", uid.MULTIFRAME_GRAYSCALE_BYTE_SC, "OT", "sc", True, ("mono8",)),
    IOD("mf-grayscale-word-sc", uid.MULTIFRAME_GRAYSCALE_WORD_SC, "OT", "sc", True, ("mono16",)),
    IOD("mf-true-color-sc", uid.MULTIFRAME_TRUE_COLOR_SC, "OT", "sc", True, ("rgb8",)),
    # PS3.3 A.32.1, A.32.5, A.32.7: VL images; endoscopy is "ES", visible
    # light photography "XC".
    IOD("vl-endoscopic", uid.VL_ENDOSCOPIC_IMAGE, "ES", "vl", False, ("rgb8",)),
    IOD("video-endoscopic", uid.VIDEO_ENDOSCOPIC_IMAGE, "ES", "vl", True, ("rgb8", "ycbcr422")),
    IOD("video-photographic", uid.VIDEO_PHOTOGRAPHIC_IMAGE, "XC", "vl", True, ("rgb8", "ycbcr422")),
):
    IODS[_iod.name] = _iod


# The transfer syntaxes a clip may be stored in, by the names the
# configuration (clip.transfer_syntax) and `modgate capture
# --transfer-syntax` use: (UID, codec kind of hal/codec or None).
TRANSFER_SYNTAXES = {
    "h264": (uid.MPEG4_AVC_HP41, "h264"),
    "h264-bd": (uid.MPEG4_AVC_HP41_BD, "h264"),
    "h264-hp42": (uid.MPEG4_AVC_HP42_2D, "h264"),
    "jpeg-baseline": (uid.JPEG_BASELINE_8BIT, "jpeg"),
    "explicit": (uid.EXPLICIT_VR_LITTLE_ENDIAN, None),
    "implicit": (uid.IMPLICIT_VR_LITTLE_ENDIAN, None),
}


def default_transfer_syntax(iod):
    """What an IOD is stored in when nothing is chosen (issue 16): H.264 for
    video, JPEG Baseline for colour stills and true colour SC, Explicit VR
    LE for grayscale SC (JPEG Baseline has no 16-bit, and an 8-bit gray
    capture is often measured)."""
    i = IODS[iod]
    if i.family == "vl" and i.multiframe:
        return "h264"
    if i.pixel_formats == ("rgb8",):
        return "jpeg-baseline"
    return "explicit"


def transfer_syntax_of(name, iod):
    """The transfer syntax's name for a clip of iod: name, or when it is
    None (not chosen) the IOD's default."""
    return name or default_transfer_syntax(iod)


def check_transfer_syntax(name, iod, pixel):
    """ValueError unless a clip of iod in pixel can be stored in the
    transfer syntax called name."""
    kind = TRANSFER_SYNTAXES[name][1]
    if kind == "h264" and not (IODS[iod].family == "vl" and IODS[iod].multiframe):
        raise ValueError("%s is for the video IODs (video-endoscopic, video-photographic), not %s" % (name, iod))
    if pixel in CODEC_ONLY_PIXELS and kind != "h264":
        raise ValueError("%s frames are stored as H.264 only (h264, h264-bd, h264-hp42), not %s" % (pixel, name))
    if kind == "jpeg" and pixel not in ("rgb8", "mono8"):
        raise ValueError("jpeg-baseline is 8-bit (PS3.5 8.2.1); %s frames need explicit or implicit" % pixel)
