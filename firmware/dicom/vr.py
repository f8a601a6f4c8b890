"""Value Representations (PS3.5 6.2): what each VR allows and how its value
becomes bytes (little endian, padded to even length).

``encode_value(vr, value, charset)`` is the one entry point; it raises
ValueError with the VR and the rule broken, so a caller can tell a technician
which attribute was wrong and why.
"""

import struct

from firmware.compat import all_digits, is_ascii
from firmware.dicom.uid import check_uid

UTF8 = "ISO_IR 192"  # PS3.3 C.12.1.1.2: the Specific Character Set for UTF-8

# PS3.5 7.1.2: VRs with a 2-byte reserved field and a 4-byte length in
# Explicit VR; all others have a 2-byte length.
LONG_LENGTH = ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")

# Text VRs: maximum length in characters of one value (None: bounded only by
# the 32-bit length), whether a backslash separates values (multi-valued),
# and whether Specific Character Set applies (PS3.5 6.1.2.3).
_TEXT = {
    "AE": (16, True, False),
    "AS": (4, True, False),
    "CS": (16, True, False),
    "DA": (8, True, False),
    "DS": (16, True, False),
    "DT": (26, True, False),
    "IS": (12, True, False),
    "LO": (64, True, True),
    "LT": (10240, False, True),
    "PN": (None, True, True),  # 64 per component group: checked apart
    "SH": (16, True, True),
    "ST": (1024, False, True),
    "TM": (14, True, False),
    "UC": (None, True, True),
    "UI": (64, True, False),
    "UR": (None, False, False),
    "UT": (None, False, True),
}

# Binary numbers: struct code and size of one value.
_NUMBER = {
    "FL": ("f", 4),
    "FD": ("d", 8),
    "SL": ("i", 4),
    "SS": ("h", 2),
    "SV": ("q", 8),
    "UL": ("I", 4),
    "US": ("H", 2),
    "UV": ("Q", 8),
}

_BYTES = ("OB", "OD", "OF", "OL", "OV", "OW", "UN")

_CS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _"
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def is_text(vr):
    return vr in _TEXT


def pad_byte(vr):
    """PS3.5 6.2: UI pads with NUL, text with a space, binary with NUL."""
    return b" " if vr in _TEXT and vr != "UI" else b"\x00"


def needs_charset(vr, value):
    """True if this value can only be written with a Specific Character Set."""
    if vr not in _TEXT or not _TEXT[vr][2] or value is None:
        return False
    for item in _as_list(value):
        if isinstance(item, str) and not is_ascii(item):
            return True
    return False


def encode_value(vr, value, charset=None):
    """The value field of an element, padded to even length.

    value is None or '' (an empty, zero-length value), a str or number, a
    list or tuple of them (multi-valued, VM > 1), or bytes for OB/OW/UN and
    friends. charset is None (default repertoire) or UTF8.
    """
    if value is None:
        return b""
    if vr in _TEXT:
        raw = _encode_text(vr, value, charset)
    elif vr in _NUMBER:
        raw = _encode_numbers(vr, value)
    elif vr == "AT":
        raw = b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in _as_list(value))
    elif vr in _BYTES:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValueError("%s value must be bytes" % vr)
        raw = bytes(value)
    else:
        raise ValueError("unknown or non-value VR %r" % (vr,))
    if len(raw) & 1:
        raw += pad_byte(vr)
    return raw


def _as_list(value):
    if isinstance(value, (list, tuple)):
        return value
    return (value,)


def _encode_numbers(vr, value):
    code, size = _NUMBER[vr]
    values = _as_list(value)
    try:
        return struct.pack("<%d%s" % (len(values), code), *values)
    except (struct.error, OverflowError, TypeError):
        raise ValueError("%s value out of range or not a number: %r" % (vr, value))


def _encode_text(vr, value, charset):
    max_chars, multi, uses_charset = _TEXT[vr]
    values = _as_list(value)
    if len(values) > 1 and not multi:
        raise ValueError("%s is single-valued (VM 1)" % vr)
    texts = []
    for item in values:
        text = _to_text(vr, item)
        _check_text(vr, text, max_chars, multi)
        texts.append(text)
    joined = "\\".join(texts)
    if uses_charset and charset == UTF8:
        return joined.encode("utf-8")
    if not is_ascii(joined):
        if uses_charset:
            raise ValueError("%s value needs Specific Character Set %s" % (vr, UTF8))
        raise ValueError("%s allows only the default character repertoire" % vr)
    return joined.encode("utf-8")


def _to_text(vr, item):
    if isinstance(item, str):
        return item
    if vr == "IS" and isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    if vr == "DS" and isinstance(item, (int, float)) and not isinstance(item, bool):
        return format_ds(item)
    raise ValueError("%s value must be a string, not %r" % (vr, item))


def format_ds(number):
    """A Decimal String of at most 16 characters for a number (PS3.5 6.2 DS)."""
    if isinstance(number, int):
        text = str(number)
    else:
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("DS cannot hold %r" % (number,))
        text = repr(number)
        precision = 16
        while len(text) > 16 and precision > 1:
            precision -= 1
            text = "%.*g" % (precision, number)
    if len(text) > 16:
        raise ValueError("DS cannot hold %r in 16 characters" % (number,))
    return text


def _check_text(vr, text, max_chars, multi):
    if max_chars is not None and len(text) > max_chars:
        raise ValueError("%s value longer than %d characters: %r" % (vr, max_chars, text))
    if multi and "\\" in text:
        raise ValueError("%s value contains a backslash (the value delimiter)" % vr)
    # PS3.5 6.1.3 / 6.2: control characters are not allowed, except ESC in
    # the SCS VRs and, in the text VRs, the format effectors LF FF CR TAB.
    # min() and "in" run in C on both Pythons: the per-character loop runs
    # only for text that has a control character at all.
    if text and (min(text) < " " or "\x7f" in text):
        _check_controls(vr, text)
    check = _CHECKS.get(vr)
    if check is not None and text != "":
        check(text)


def _check_controls(vr, text):
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            if vr in ("LT", "ST", "UT") and ch in "\n\f\r\t\x1b":
                continue
            if ch == "\x1b" and _TEXT[vr][2]:
                continue
            raise ValueError("%s value contains control character 0x%02X" % (vr, code))


def _check_ae(text):
    if text.strip(" ") == "":
        raise ValueError("AE title must not be all spaces")


def _check_as(text):
    if len(text) != 4 or not all_digits(text[:3]) or text[3] not in "DWMY":
        raise ValueError("AS is nnnD, nnnW, nnnM or nnnY: %r" % (text,))


def _check_cs(text):
    for ch in text:
        if ch not in _CS_CHARS:
            raise ValueError("CS allows A-Z, 0-9, space and underscore: %r" % (text,))


def _check_da(text):
    if len(text) != 8 or not all_digits(text):
        raise ValueError("DA is YYYYMMDD: %r" % (text,))
    month, day = int(text[4:6]), int(text[6:8])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError("DA month or day out of range: %r" % (text,))


def _check_tm(text):
    whole, _, fraction = text.partition(".")
    if len(whole) not in (2, 4, 6) or not all_digits(whole):
        raise ValueError("TM is HH[MM[SS[.FFFFFF]]]: %r" % (text,))
    if "." in text and (len(whole) != 6 or not all_digits(fraction) or len(fraction) > 6):
        raise ValueError("TM fraction needs HHMMSS and 1-6 digits: %r" % (text,))
    limits = (23, 59, 60)
    for i in range(len(whole) // 2):
        if int(whole[2 * i : 2 * i + 2]) > limits[i]:
            raise ValueError("TM field out of range: %r" % (text,))


def _check_dt(text):
    body = text
    for sign in "+-":
        if sign in text[1:]:
            body, offset = text.rsplit(sign, 1)
            if len(offset) != 4 or not all_digits(offset):
                raise ValueError("DT offset is &ZZXX: %r" % (text,))
    whole, _, fraction = body.partition(".")
    if len(whole) not in (4, 6, 8, 10, 12, 14) or not all_digits(whole):
        raise ValueError("DT is YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]: %r" % (text,))
    if "." in body and (len(whole) != 14 or not all_digits(fraction) or len(fraction) > 6):
        raise ValueError("DT fraction needs seconds and 1-6 digits: %r" % (text,))


def _strip_sign(text):
    text = text.strip(" ")
    if text[:1] in ("+", "-"):
        return text[1:]
    return text


def _check_is(text):
    digits = _strip_sign(text)
    if not all_digits(digits):
        raise ValueError("IS is an optionally signed integer: %r" % (text,))
    if not _INT32_MIN <= int(text) <= _INT32_MAX:
        raise ValueError("IS out of the 32-bit range: %r" % (text,))


def _check_ds(text):
    body = _strip_sign(text)
    mantissa, exponent = body, None
    for mark in "eE":
        if mark in body:
            mantissa, exponent = body.split(mark, 1)
    whole, dot, fraction = mantissa.partition(".")
    if not (whole or fraction) or (whole and not all_digits(whole)) or (fraction and not all_digits(fraction)):
        raise ValueError("DS is a decimal number: %r" % (text,))
    if dot and not whole and not fraction:
        raise ValueError("DS is a decimal number: %r" % (text,))
    if exponent is not None and not all_digits(_strip_sign(exponent)):
        raise ValueError("DS exponent is an integer: %r" % (text,))


def _check_ui(text):
    check_uid(text)


def _check_ur(text):
    # PS3.5 6.2 UR: an RFC 3986 URI; no spaces but trailing padding.
    if " " in text.rstrip(" "):
        raise ValueError("UR (a URI) contains a space: %r" % (text,))


def _check_pn(text):
    groups = text.split("=")
    if len(groups) > 3:
        raise ValueError("PN has at most 3 component groups: %r" % (text,))
    for group in groups:
        if len(group) > 64:
            raise ValueError("PN component group longer than 64 characters: %r" % (group,))
        if len(group.split("^")) > 5:
            raise ValueError("PN has at most 5 components: %r" % (group,))


_CHECKS = {
    "AE": _check_ae,
    "AS": _check_as,
    "CS": _check_cs,
    "DA": _check_da,
    "DS": _check_ds,
    "DT": _check_dt,
    "IS": _check_is,
    "PN": _check_pn,
    "TM": _check_tm,
    "UI": _check_ui,
    "UR": _check_ur,
}


def person_name(family="", given="", middle="", prefix="", suffix=""):
    """A PN value from its five components (PS3.5 6.2.1.1), joined with '^'
    and with empty trailing components left out."""
    parts = [family, given, middle, prefix, suffix]
    while parts and parts[-1] == "":
        parts.pop()
    return "^".join(parts)
