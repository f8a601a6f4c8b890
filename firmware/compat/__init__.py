"""Shims so that one source runs on CPython and on MicroPython.

micropython-lib conventions: import plain module names, use ``const`` from
``micropython`` where it exists, and let ``ticks_*`` wrap with the period
MicroPython uses (2**30) on both implementations, so a bug in wrap-around
handling shows up on the host too.
"""

import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(value):
        return value


TICKS_PERIOD = const(1 << 30)
_TICKS_HALF = const(1 << 29)

if MICROPYTHON:
    ticks_ms = time.ticks_ms
    ticks_us = time.ticks_us
    ticks_add = time.ticks_add
    ticks_diff = time.ticks_diff
else:

    def ticks_ms():
        return (time.monotonic_ns() // 1000000) & (TICKS_PERIOD - 1)

    def ticks_us():
        return (time.monotonic_ns() // 1000) & (TICKS_PERIOD - 1)

    def ticks_add(ticks, delta):
        return (ticks + delta) & (TICKS_PERIOD - 1)

    def ticks_diff(end, start):
        # Signed difference in (-period/2, period/2], as MicroPython defines it.
        return ((end - start + _TICKS_HALF) & (TICKS_PERIOD - 1)) - _TICKS_HALF


def urandom(n):
    """n random bytes: the OS's generator where there is one."""
    try:
        import os

        return os.urandom(n)
    except (ImportError, AttributeError, NotImplementedError):
        pass
    import random

    seed = time.time_ns() if hasattr(time, "time_ns") else int(time.time() * 1000000)
    random.seed(seed ^ random.getrandbits(30))
    out = bytearray(n)
    for i in range(n):
        out[i] = random.getrandbits(8)
    return bytes(out)


def ljust(text, width, fill=" "):
    """str.ljust, which MicroPython's str lacks."""
    if len(text) >= width:
        return text
    return text + fill * (width - len(text))


if hasattr("", "isascii"):

    def is_ascii(text):
        return text.isascii()

else:

    def is_ascii(text):
        """str.isascii, which MicroPython's str lacks."""
        for ch in text:
            if ord(ch) > 127:
                return False
        return True


def all_digits(text):
    """Only ASCII digits, at least one (str.isdigit() also takes other
    scripts' digits and superscripts, which no DICOM number allows)."""
    if not text:
        return False
    for ch in text:
        if ch not in "0123456789":
            return False
    return True
