"""The ICC profile modgate gives its colour images (PS3.3 C.11.15 ICC
Profile Module): an sRGB (IEC 61966-2-1) input profile, built from integer
constants so it is the same bytes on every Python.

Why sRGB: the box grabs the modality's video output and knows nothing of its
camera's colour, so it can describe its RGB only by the well-known space
such video is made for. sRGB has the primaries of ITU-R BT.709 and a D65
white; together with the BT.601 Y'CbCr matrix of YBR_FULL_422 (and of the
video flow's colorimetry=BT601) it is the JPEG/JFIF convention.

What PS3.3 C.11.15.1.1 asks of the profile, and how this one meets it:

- device class Input ('scnr'), colour space 'RGB ', PCS 'XYZ ' or 'Lab ':
  'scnr', 'RGB ', 'XYZ ' (a three-component matrix profile, which the note
  there names for well-known spaces such as sRGB);
- rendering intent Perceptual (recommended): 0;
- chromatic adaptation tag when the illuminant is not D50 (recommended):
  'chad', Bradford D65 -> D50;
- LUTs as lut16Type (recommended): there are none, a matrix profile has
  curves and colorants instead.

The layout is ICC.1:2010 (profile version 4.3): a 128-byte header, the tag
table, then the tag data on 4-byte boundaries; all numbers big-endian,
XYZ and matrix values as s15Fixed16Number (value * 65536, rounded).
tests/test_rtv.py recomputes every constant below from the sRGB primaries
and white point and reads the profile back with LittleCMS.
"""

import struct

# ICC.1:2010 7.2.4: profile version 4.3.0.0.
_VERSION = 0x04300000
# ICC.1:2010 7.2.8: the creation date and time, fixed (the profile's content
# never changes with the day it is built): year, month, day, h, m, s.
_CREATED = (2026, 1, 1, 0, 0, 0)
# ICC.1:2010 7.2.16: the PCS illuminant, D50 (X, Y, Z) = (0.9642, 1, 0.8249).
D50 = (0xF6D6, 0x10000, 0xD32D)
# Bradford adaptation of the D65 white (x 0.3127, y 0.3290) to D50, row by
# row (ICC.1:2010 Annex E, tag 'chad').
CHAD_D65_TO_D50 = (
    0x10C42, 0x005DE, -0x00CDB,
    0x00793, 0x0FD90, -0x0045F,
    -0x0025E, 0x003DC, 0x0C06E,
)
# The sRGB primaries R (0.64, 0.33), G (0.30, 0.60), B (0.15, 0.06) as PCS
# XYZ of full red, green and blue, adapted to D50 (the 'rXYZ', 'gXYZ' and
# 'bXYZ' tags): the columns of the sRGB-to-PCS matrix.
COLORANTS = (
    (0x6FA0, 0x38F5, 0x0390),
    (0x6297, 0xB787, 0x18D9),
    (0x249F, 0x0F84, 0xB6C3),
)
# IEC 61966-2-1's transfer function as an ICC parametric curve of function
# type 3 (ICC.1:2010 10.18): Y = (aX + b)^g for X >= d, else Y = cX, with
# g 2.4, a 1/1.055, b 0.055/1.055, c 1/12.92, d 0.04045.
SRGB_CURVE = (0x26666, 0xF2A7, 0x0D59, 0x13D0, 0x0A5B)

DESCRIPTION = "sRGB IEC61966-2.1 (modgate input profile)"
COPYRIGHT = "No copyright, use freely"


def _s15(values):
    return b"".join(struct.pack(">i", v) for v in values)


def _xyz(values):
    # ICC.1:2010 10.31 XYZType.
    return b"XYZ \x00\x00\x00\x00" + _s15(values)


def _mluc(text):
    """ICC.1:2010 10.15 multiLocalizedUnicodeType: one record, en-US, the
    text in UTF-16BE (written by hand: MicroPython's str.encode knows only
    UTF-8; the text is ASCII)."""
    raw = bytearray()
    for code in text.encode():
        if code > 0x7F:
            raise ValueError("profile text must be ASCII: %r" % text)
        raw += bytes((0, code))
    return b"mluc\x00\x00\x00\x00" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(raw), 28) + bytes(raw)


def _para(params):
    # ICC.1:2010 10.18 parametricCurveType, function type 3 (five parameters).
    return b"para\x00\x00\x00\x00" + struct.pack(">HH", 3, 0) + _s15(params)


def srgb_profile():
    """The profile's bytes (about 500)."""
    curve = _para(SRGB_CURVE)
    # (signature, data); tags with the same data share it (ICC.1:2010 7.3.1).
    tags = (
        (b"desc", _mluc(DESCRIPTION)),
        (b"cprt", _mluc(COPYRIGHT)),
        (b"wtpt", _xyz(D50)),  # ICC.1:2010 9.2.36: D50 when 'chad' is present
        (b"chad", b"sf32\x00\x00\x00\x00" + _s15(CHAD_D65_TO_D50)),
        (b"rXYZ", _xyz(COLORANTS[0])),
        (b"gXYZ", _xyz(COLORANTS[1])),
        (b"bXYZ", _xyz(COLORANTS[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    )
    table = []
    data = bytearray()
    offset = 128 + 4 + 12 * len(tags)
    placed = {}
    for signature, body in tags:
        if body not in placed:
            placed[body] = offset + len(data)
            data += body
            data += bytes(-len(data) % 4)  # the next tag on a 4-byte boundary
        table.append(struct.pack(">4sII", signature, placed[body], len(body)))
    size = offset + len(data)
    header = (
        # ICC.1:2010 7.2: size, preferred CMM (none), version, device class
        # Input, colour space RGB, PCS XYZ.
        struct.pack(">III4s4s4s", size, 0, _VERSION, b"scnr", b"RGB ", b"XYZ ")
        + struct.pack(">6H", *_CREATED)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8)  # platform, flags, device manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual (ICC.1:2010 7.2.15)
        + _s15(D50)
        + bytes(4 + 16 + 28)  # creator, profile ID (zero: not computed, 7.2.18), reserved
    )
    return header + struct.pack(">I", len(tags)) + b"".join(table) + bytes(data)
