"""The IODs modgate creates (PS3.3 Annex A) and the pixel formats each takes.

A table, not code: for each IOD its SOP class, modality, whether it is
multi-frame, which module family it belongs to (Secondary Capture or VL) and
the pixel formats it accepts. ``encoder.py`` turns a row into attributes.
"""

from firmware.dicom import uid

# Pixel formats: samples per pixel, Photometric Interpretation, Bits
# Allocated, Bits Stored (PS3.3 C.7.6.3). The byte layout of each is the
# acquisition side's (hal.acq): rgb8 pixel-interleaved (Planar Configuration
# 0), mono16 little endian words with 12 bits stored.
PIXEL_FORMATS = {
    "rgb8": (3, "RGB", 8, 8),
    "mono8": (1, "MONOCHROME2", 8, 8),
    "mono16": (1, "MONOCHROME2", 16, 12),
}


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
    IOD("video-endoscopic", uid.VIDEO_ENDOSCOPIC_IMAGE, "ES", "vl", True, ("rgb8",)),
    IOD("video-photographic", uid.VIDEO_PHOTOGRAPHIC_IMAGE, "XC", "vl", True, ("rgb8",)),
):
    IODS[_iod.name] = _iod
