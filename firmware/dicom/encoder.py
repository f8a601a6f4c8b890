"""The streaming encoder: one DICOM object opened with its attributes, fed
frame by frame, closed. Sans-I/O: it returns the bytes to write and, when the
frame count was not known up front, the (offset, bytes) patches to apply to
the seekable output at the end. Nothing it holds grows with the number of
frames.

    enc = ObjectEncoder("video-endoscopic", 1080, 1920, "rgb8", now, attributes)
    out.write(enc.header())
    for frame in frames:
        for buf in enc.frame(frame):
            out.write(buf)
    trailer, patches = enc.close()
    out.write(trailer)
    for offset, data in patches:
        out.seek(offset); out.write(data)
"""

import struct

from firmware.dicom import tags
from firmware.dicom.element import (
    SEQUENCE_DELIMITER,
    UNDEFINED_LENGTH,
    basic_offset_table,
    dataset_charset,
    element_header,
    encode_element,
    fragment,
    item_header,
    sorted_elements,
)
from firmware.dicom.iod import CODEC_ONLY_PIXELS, IODS, PIXEL_FORMATS
from firmware.dicom.part10 import file_meta
from firmware.dicom.uid import (ENCAPSULATED, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, JPEG_BASELINE_8BIT,
                                MPEG4_AVC_HP41_BD, MPEG4_AVC_HP42_2D, VIDEO_BITSTREAMS, generate_uid)
from firmware.dicom.vr import UTF8

MANUFACTURER = "modgate"
# Image Type (PS3.3 C.7.6.1.1.2, C.8.12.1.1.6): the frames are the
# modality's own pictures as acquired, not derived from other images.
IMAGE_TYPE = ("ORIGINAL", "PRIMARY")
# A Code Sequence item (PS3.3 8.8): SNOMED CT 38266002 "Entire body".
DEFAULT_ANATOMIC_REGION = [
    (tags.CodeValue, "38266002"),
    (tags.CodingSchemeDesignator, "SCT"),
    (tags.CodeMeaning, "Entire body"),
]
# Number of Frames is an IS of at most 12 characters; when the count is only
# known at close, a fixed-width field (value then trailing spaces, which
# PS3.5 6.2 IS allows) is written and patched in place.
_FRAMES_FIELD = 10
_MAX_PIXEL_BYTES = 0xFFFFFFFE  # PS3.5 7.1.1: the largest defined length
# Lossy Image Compression Ratio (DS, PS3.3 C.7.6.1.1.5) is only known at
# close: a fixed-width field, patched like Number of Frames.
_RATIO_FIELD = 16
# PS3.3 C.7.6.1.1.5 / PS3.5 8.2: what a compressed object declares.
COMPRESSION = {JPEG_BASELINE_8BIT: ("ISO_10918_1", "YBR_FULL_422")}
for _ts in VIDEO_BITSTREAMS:
    COMPRESSION[_ts] = ("ISO_14496_10", "YBR_PARTIAL_420")
# H.264 (ITU-T H.264 Table A-1): MaxFS in macroblocks, MaxMBPS, by level;
# the transfer syntaxes of PS3.5 8.2.8 bound the bitstream to their level.
_LEVELS = {"4.1": (8192, 245760), "4.2": (8704, 522240)}
# The BD-compatible syntax (PS3.5 8.2.8) takes only Blu-ray's formats:
# (columns, rows) -> frame rates as (numerator, denominator).
_BD_FORMATS = {
    (1920, 1080): ((24000, 1001), (24, 1)),
    (1280, 720): ((24000, 1001), (24, 1), (50, 1), (60000, 1001)),
}


def check_video(transfer_syntax, columns, rows, rate):
    """ValueError naming the constraint when a frame size and rate cannot
    be carried in an MPEG-4 AVC/H.264 transfer syntax (PS3.5 8.2.8)."""
    name = {VIDEO_BITSTREAMS[0]: "H.264 High Profile / Level 4.1", MPEG4_AVC_HP41_BD: "H.264 BD-compatible",
            MPEG4_AVC_HP42_2D: "H.264 High Profile / Level 4.2"}[transfer_syntax]
    if columns % 2 or rows % 2:
        raise ValueError("%s (4:2:0) needs an even frame size, not %dx%d" % (name, columns, rows))
    if transfer_syntax == MPEG4_AVC_HP41_BD:
        rates = _BD_FORMATS.get((columns, rows))
        if rates is None or tuple(rate) not in rates:
            raise ValueError("%s takes only Blu-ray's progressive formats (1920x1080 at 24 or 23.98 fps, 1280x720 "
                             "at 23.98, 24, 50 or 59.94 fps), not %dx%d at %d/%d fps" % (
                                 name, columns, rows, rate[0], rate[1]))
        return
    max_fs, max_mbps = _LEVELS["4.2" if transfer_syntax == MPEG4_AVC_HP42_2D else "4.1"]
    if columns > 1920 or rows > 1080:
        raise ValueError("%s is for frames up to 1920x1080, not %dx%d" % (name, columns, rows))
    blocks = ((columns + 15) // 16) * ((rows + 15) // 16)
    if blocks > max_fs or blocks * rate[0] > max_mbps * rate[1]:
        raise ValueError("%s allows %d macroblocks a second (ITU-T H.264 Table A-1); %dx%d at %d/%d fps needs "
                         "%d" % (name, max_mbps, columns, rows, rate[0], rate[1], blocks * rate[0] // rate[1]))


def format_da(now):
    return "%04d%02d%02d" % (now[0], now[1], now[2])


def format_tm(now):
    text = "%02d%02d%02d" % (now[3], now[4], now[5])
    if len(now) > 6 and now[6]:
        text += ".%06d" % now[6]
    return text


def frame_time_ms(rate):
    """Frame Time (0018,1063) in ms for a rate (numerator, denominator) in
    frames per second, to the microsecond, without float formatting (so it
    is the same string on every Python)."""
    num, den = rate
    micro = (1000000 * den + num // 2) // num
    whole, frac = divmod(micro, 1000)
    text = "%d.%03d" % (whole, frac)
    return text.rstrip("0").rstrip(".")


class ObjectEncoder:
    """Encodes one image object.

    iod: a key of iod.IODS. rows, columns: the frame size. pixel: a key of
    iod.PIXEL_FORMATS. now: the acquisition start as (year, month, day,
    hour, minute, second[, microsecond]) from the caller's clock.
    attributes: {tag: value} for the patient, study, series and equipment,
    overriding the defaults (UIDs not given are generated under uid_root).
    frames: the frame count when known up front (then the output needs no
    seeking), else None. frame_rate: (numerator, denominator) frames/s.
    transfer_syntax: Explicit or Implicit VR LE for native pixels, or an
    encapsulated one, whose frames are then already-compressed fragments.
    """

    def __init__(
        self,
        iod,
        rows,
        columns,
        pixel,
        now,
        attributes=None,
        frames=None,
        frame_rate=(30, 1),
        transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN,
        uid_root=None,
        source_ae_title=None,
    ):
        if iod not in IODS:
            raise ValueError("unknown IOD %r; one of %s" % (iod, ", ".join(sorted(IODS))))
        self.iod = IODS[iod]
        if pixel not in self.iod.pixel_formats:
            raise ValueError("%s takes pixel format %s, not %r" % (iod, " or ".join(self.iod.pixel_formats), pixel))
        if not (0 < rows <= 0xFFFF and 0 < columns <= 0xFFFF):
            raise ValueError("rows and columns must be 1 to 65535")
        if frames is not None and frames < 1:
            raise ValueError("a known frame count must be at least 1")
        if not self.iod.multiframe and frames not in (None, 1):
            raise ValueError("%s is a single-frame IOD" % iod)
        if frame_rate[0] <= 0 or frame_rate[1] <= 0:
            raise ValueError("frame rate must be positive")
        self.rows = rows
        self.columns = columns
        self.pixel = pixel
        samples, _, bits_allocated, _ = PIXEL_FORMATS[pixel]
        self.frame_length = rows * columns * samples * (bits_allocated // 8)
        self.transfer_syntax = transfer_syntax
        self.explicit = transfer_syntax != IMPLICIT_VR_LITTLE_ENDIAN
        self.encapsulated = transfer_syntax in ENCAPSULATED
        # A video bitstream goes into one fragment (PS3.5 A.4, 8.2.8):
        # frame() then takes access units, one a picture.
        self.bitstream = transfer_syntax in VIDEO_BITSTREAMS
        if pixel in CODEC_ONLY_PIXELS and not self.bitstream:
            raise ValueError("%s frames are stored as H.264 only, not in %s" % (pixel, transfer_syntax))
        if self.bitstream:
            if not self.iod.multiframe or pixel not in ("rgb8", "ycbcr422"):
                raise ValueError("%s takes colour video (video IODs, rgb8 or ycbcr422 frames), not %s %s" % (
                    transfer_syntax, iod, pixel))
            check_video(transfer_syntax, columns, rows, frame_rate)
        self.declared_frames = frames
        self.max_frames = 1 if not self.iod.multiframe else _MAX_PIXEL_BYTES // self.frame_length
        if transfer_syntax in VIDEO_BITSTREAMS:
            # The bitstream's one fragment holds at most 4 GiB (PS3.5 7.1.1).
            # The encoders are capped (hal/codec/x264.py: VBV at 40 Mbit/s,
            # over 30:1 at 1080p30), so an access unit is far below an
            # eighth of a raw frame: a clip ends there, and the next one
            # (an instance of the same series starting with an IDR picture
            # and its SPS/PPS) goes on.
            self.max_frames = _MAX_PIXEL_BYTES // (self.frame_length // 8 or 1)
        self.frame_count = 0
        self.pixel_bytes = 0
        self._closed = False
        self._header = None
        self._frames_offset = None
        self._length_offset = None
        self._ratio_offset = None
        self._fragment_offset = None

        values = self._defaults(now, frame_rate)
        if attributes:
            values.update(attributes)
        for key in (tags.StudyInstanceUID, tags.SeriesInstanceUID, tags.SOPInstanceUID):
            if not values.get(key):
                values[key] = generate_uid(uid_root)
        self.sop_instance_uid = values[tags.SOPInstanceUID]
        self.study_instance_uid = values[tags.StudyInstanceUID]
        self.series_instance_uid = values[tags.SeriesInstanceUID]
        self._build_header(values, source_ae_title)

    def _defaults(self, now, frame_rate):
        iod = self.iod
        samples, photometric, bits_allocated, bits_stored = PIXEL_FORMATS[self.pixel]
        da, tm = format_da(now), format_tm(now)
        v = {
            tags.ImageType: IMAGE_TYPE,
            tags.InstanceCreationDate: da,
            tags.InstanceCreationTime: tm,
            tags.SOPClassUID: iod.sop_class_uid,
            tags.StudyDate: da,
            tags.SeriesDate: da,
            tags.ContentDate: da,
            tags.AcquisitionDateTime: da + tm,
            tags.StudyTime: tm,
            tags.SeriesTime: tm,
            tags.ContentTime: tm,
            tags.AccessionNumber: "",
            tags.Modality: iod.modality,
            tags.Manufacturer: MANUFACTURER,
            tags.ReferringPhysicianName: "",
            tags.PatientName: "",
            tags.PatientID: "",
            tags.PatientBirthDate: "",
            tags.PatientSex: "",
            tags.StudyID: "",
            tags.SeriesNumber: 1,
            tags.InstanceNumber: 1,
            tags.PatientOrientation: "",
            tags.SamplesPerPixel: samples,
            tags.PhotometricInterpretation: photometric,
            tags.Rows: self.rows,
            tags.Columns: self.columns,
            tags.BitsAllocated: bits_allocated,
            tags.BitsStored: bits_stored,
            tags.HighBit: bits_stored - 1,
            tags.PixelRepresentation: 0,
            tags.BurnedInAnnotation: "NO",
            tags.LossyImageCompression: "00",
        }
        if self.transfer_syntax in COMPRESSION:
            # PS3.3 C.7.6.1.1.5: lossy, by which method and ratio; PS3.5
            # 8.2.1 / 8.2.8: the Photometric Interpretation of the
            # compressed colour frames.
            method, colour = COMPRESSION[self.transfer_syntax]
            v[tags.LossyImageCompression] = "01"
            v[tags.LossyImageCompressionMethod] = method
            v[tags.LossyImageCompressionRatio] = "1"  # replaced in _build_header
            if samples == 3:
                v[tags.PhotometricInterpretation] = colour
        if samples > 1:
            v[tags.PlanarConfiguration] = 0
        if iod.family == "sc":
            # PS3.3 C.8.6.1: frames grabbed from the modality's video output.
            v[tags.ConversionType] = "DV"
            # PS3.3 C.7.3.1 Type 2C: with no anatomic region to say the body
            # part is unpaired, present and empty unless the caller knows.
            v[tags.Laterality] = ""
            if samples == 1:
                # PS3.3 C.8.6.3: grayscale SC pixels are presentation-ready.
                v[tags.PresentationLUTShape] = "IDENTITY"
                v[tags.RescaleIntercept] = "0"
                v[tags.RescaleSlope] = "1"
                v[tags.RescaleType] = "US"
        else:
            # PS3.3 C.8.4.x: Type 2, empty when nothing is known.
            v[tags.AcquisitionContextSequence] = []
            # PS3.3 C.8.12.1: the region imaged; callers that know it (from
            # config or a worklist) override this whole-body default, which
            # is unpaired, so Laterality stays absent.
            v[tags.AnatomicRegionSequence] = [DEFAULT_ANATOMIC_REGION]
        if iod.multiframe:
            # PS3.3 C.7.6.6 / C.7.6.5: frames are spaced by Frame Time.
            rate = (frame_rate[0] + frame_rate[1] // 2) // frame_rate[1]
            v[tags.FrameIncrementPointer] = tags.FrameTime
            v[tags.FrameTime] = frame_time_ms(frame_rate)
            v[tags.CineRate] = max(rate, 1)
            v[tags.RecommendedDisplayFrameRate] = max(rate, 1)
            v[tags.NumberOfFrames] = 0  # replaced in _build_header
        return v

    def _build_header(self, values, source_ae_title):
        dataset = list(values.items())
        charset = dataset_charset(dataset)
        if charset:
            dataset.append((tags.SpecificCharacterSet, charset))
        elif tags.SpecificCharacterSet in values:
            charset = values[tags.SpecificCharacterSet]
            if charset not in ("", UTF8, "ISO_IR 6"):
                raise ValueError("Specific Character Set must be ISO_IR 6 or %s" % UTF8)
            charset = charset or None
        parts = [file_meta(self.iod.sop_class_uid, self.sop_instance_uid, self.transfer_syntax, source_ae_title)]
        offset = len(parts[0])
        for tag, vr, value in sorted_elements(dataset):
            if tag == tags.NumberOfFrames:
                field = self._frames_field(self.declared_frames or 0)
                encoded = element_header(tag, vr, len(field), self.explicit) + field
                self._frames_offset = offset + len(encoded) - len(field)
            elif tag == tags.LossyImageCompressionRatio:
                field = b" " * _RATIO_FIELD
                encoded = element_header(tag, vr, len(field), self.explicit) + field
                self._ratio_offset = offset + len(encoded) - len(field)
            elif tag >= tags.PixelData:
                raise ValueError("attributes after Pixel Data are not written by the encoder")
            else:
                # Sequences get defined lengths (PS3.5 7.5.1 allows either),
                # the form DCMTK writes: a PACS built on DCMTK (Orthanc among
                # them) then keeps our data set byte for byte.
                encoded = encode_element(tag, vr, value, self.explicit, charset, undefined_length=False)
            parts.append(encoded)
            offset += len(encoded)
        bits_allocated = PIXEL_FORMATS[self.pixel][2]
        if self.encapsulated:
            # PS3.5 A.4: undefined length, an (empty) Basic Offset Table, then
            # one fragment per frame.
            parts.append(element_header(tags.PixelData, "OB", UNDEFINED_LENGTH, self.explicit))
            parts.append(basic_offset_table())
            if self.bitstream:
                # The one fragment, its length patched at close (the Basic
                # Offset Table stays empty, PS3.5 8.2.8).
                offset += sum(len(p) for p in parts[-2:])
                parts.append(item_header(0))
                self._fragment_offset = offset + 4
        else:
            # PS3.5 8.2: OB for 8-bit native pixels, OW for 16-bit.
            vr = "OW" if bits_allocated > 8 else "OB"
            length = 0
            if self.declared_frames:
                length = self._padded(self.declared_frames * self.frame_length)
            parts.append(element_header(tags.PixelData, vr, length, self.explicit))
            self._length_offset = offset + len(parts[-1]) - 4
        self._header = b"".join(parts)

    @staticmethod
    def _padded(length):
        return length + (length & 1)

    def _frames_field(self, count):
        text = str(count)
        if self.declared_frames is None:
            # A fixed-width field, patched at close. Padded with leading
            # spaces (PS3.5 6.2 IS allows them): DCMTK drops trailing ones
            # when it reads a value, so a PACS on DCMTK would change it.
            text = " " * (_FRAMES_FIELD - len(text)) + text
        elif len(text) & 1:
            text += " "
        return text.encode()

    def _ratio_field(self):
        """Lossy Image Compression Ratio (DS): uncompressed over compressed
        bytes, in the fixed-width field, leading spaces (PS3.5 6.2)."""
        compressed = max(1, self.pixel_bytes)
        tenths = (self.frame_count * self.frame_length * 10 + compressed // 2) // compressed
        text = "%d.%d" % divmod(tenths, 10)
        return (" " * (_RATIO_FIELD - len(text)) + text).encode()

    def header(self):
        """Everything before the first frame's bytes."""
        return self._header

    def frame(self, data):
        """The buffers to write, in order, for one frame."""
        if self._closed:
            raise ValueError("object already closed")
        limit = self.declared_frames or self.max_frames
        if self.frame_count >= limit:
            raise ValueError("object already holds its %d frame(s)" % limit)
        if self.bitstream:
            if self.pixel_bytes + len(data) > _MAX_PIXEL_BYTES - 1:
                raise ValueError("the bitstream would pass the 4 GiB of one fragment")
            self.frame_count += 1
            self.pixel_bytes += len(data)
            return (data,)
        self.frame_count += 1
        if self.encapsulated:
            head, pad = fragment(data)
            self.pixel_bytes += len(head) + len(data) + len(pad)
            return (head, data, pad) if pad else (head, data)
        if len(data) != self.frame_length:
            self.frame_count -= 1
            raise ValueError("frame is %d bytes; %dx%d %s needs %d" % (len(data), self.columns, self.rows, self.pixel, self.frame_length))
        self.pixel_bytes += len(data)
        return (data,)

    def close(self):
        """(trailer, patches): the bytes that end the object and the
        (offset, bytes) to overwrite in what was written, in file order."""
        if self._closed:
            raise ValueError("object already closed")
        if self.frame_count == 0:
            raise ValueError("an object needs at least one frame")
        if self.declared_frames is not None and self.frame_count != self.declared_frames:
            raise ValueError("declared %d frames, got %d" % (self.declared_frames, self.frame_count))
        self._closed = True
        patches = []
        if self.declared_frames is None and self._frames_offset is not None:
            patches.append((self._frames_offset, self._frames_field(self.frame_count)))
        if self._ratio_offset is not None:
            patches.append((self._ratio_offset, self._ratio_field()))
        if self.bitstream:
            pad = b"\x00" if self.pixel_bytes & 1 else b""  # PS3.5 A.4: fragments are of even length
            patches.append((self._fragment_offset, struct.pack("<I", self.pixel_bytes + len(pad))))
            patches.sort()
            return pad + SEQUENCE_DELIMITER, patches
        if self.encapsulated:
            return SEQUENCE_DELIMITER, patches
        trailer = b"\x00" if self.pixel_bytes & 1 else b""
        if self.declared_frames is None:
            patches.append((self._length_offset, struct.pack("<I", self.pixel_bytes + len(trailer))))
        return trailer, patches
