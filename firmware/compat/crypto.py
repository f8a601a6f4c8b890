"""Password hashing for the console, in pure Python over hashlib.sha256
(the one hash MicroPython's hashlib is sure to have).

    hmac_sha256(key, msg)                          RFC 2104
    pbkdf2_hmac_sha256(password, salt, c, dklen)   RFC 8018 5.2, PRF = HMAC-SHA-256
    make_password_record(password)                 "pbkdf2-sha256$<c>$<salt hex>$<hash hex>"
    check_password(record, password)               constant-time comparison

MicroPython's sha256 objects have update() and digest() but no copy(), and
digest() finalises them ("hash is final"), so the portable inner loop hashes
(key XOR pad) || message afresh each time. Where copy() exists (CPython) the
loop copies a hash already fed the padded key instead: one compression
instead of two per HMAC, about 25 % faster here. The XOR of the U_i blocks
is one big-int XOR per iteration (int.from_bytes/to_bytes "big" exist on
MicroPython 1.27 with long ints).

DEFAULT_ITERATIONS = 100000 takes about 0.1 s on CPython 3.11 on this
project's build machine (hashlib.pbkdf2_hmac, in C, takes 0.03 s). That is
far below OWASP's 600000 for PBKDF2-HMAC-SHA256 but the console is reached
over a serial line and locks after 5 failures. MicroPython's WebAssembly port
under Node takes about 8 us an iteration (0.8 s for the default) and a
microcontroller is slower still, so a slow board passes a lower count; the
record keeps its own count.
"""

import binascii
import hashlib
import struct
from hashlib import sha256

from firmware.compat import urandom

BLOCK_SIZE = 64  # RFC 2104 2: B, SHA-256's block size in bytes
DIGEST_SIZE = 32  # L, SHA-256's output in bytes
DEFAULT_ITERATIONS = 100000
MAX_ITERATIONS = 1000000  # a record asking for more is refused, not run for minutes
SALT_SIZE = 16  # RFC 8018 4.1: at least 64 bits; 128 here
MIN_SALT_SIZE = 8
SCHEME = "pbkdf2-sha256"

_HAS_COPY = hasattr(sha256(), "copy")
# CPython's PBKDF2 in C, about 3x faster than the loop below on a host and
# far more under QEMU's TCG, where the emulated box checks the console's
# password; MicroPython has none and runs the loop.
_NATIVE = getattr(hashlib, "pbkdf2_hmac", None)


def _pads(key):
    """RFC 2104 2: (K XOR ipad, K XOR opad), K hashed first if longer than B
    and padded with zeros to B bytes."""
    if len(key) > BLOCK_SIZE:
        key = sha256(key).digest()
    key = bytes(key) + bytes(BLOCK_SIZE - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256(key, msg):
    """RFC 2104: H(K XOR opad, H(K XOR ipad, text))."""
    ikey, okey = _pads(key)
    return sha256(okey + sha256(ikey + msg).digest()).digest()


def _f(ikey, okey, first, iterations, use_copy=_HAS_COPY):
    """RFC 8018 5.2 step 3: F(P, S, c, i) = U_1 XOR ... XOR U_c, where
    U_1 = PRF(P, S || INT(i)) (first = S || INT(i)) and U_j = PRF(P, U_{j-1})."""
    from_bytes = int.from_bytes
    if use_copy:
        inner = sha256(ikey).copy
        outer = sha256(okey).copy
        h = inner()
        h.update(first)
        g = outer()
        g.update(h.digest())
        u = g.digest()
        acc = from_bytes(u, "big")
        for _ in range(iterations - 1):
            h = inner()
            h.update(u)
            g = outer()
            g.update(h.digest())
            u = g.digest()
            acc ^= from_bytes(u, "big")
    else:
        u = sha256(okey + sha256(ikey + first).digest()).digest()
        acc = from_bytes(u, "big")
        for _ in range(iterations - 1):
            u = sha256(okey + sha256(ikey + u).digest()).digest()
            acc ^= from_bytes(u, "big")
    return acc.to_bytes(DIGEST_SIZE, "big")


def pbkdf2_hmac_sha256(password, salt, iterations, dklen=DIGEST_SIZE, native=_NATIVE):
    """RFC 8018 5.2 PBKDF2 with HMAC-SHA-256: dklen bytes of derived key
    (hashlib's own where the port has it, unless native=None)."""
    if iterations < 1:
        raise ValueError("iteration count must be at least 1")
    # RFC 8018 5.2 step 1: dkLen > (2^32 - 1) * hLen is "derived key too long".
    if dklen < 1 or dklen > 0xFFFFFFFF * DIGEST_SIZE:
        raise ValueError("derived key length out of range")
    if native is not None:
        return native("sha256", bytes(password), bytes(salt), iterations, dklen)
    ikey, okey = _pads(password)
    salt = bytes(salt)
    blocks = []
    # Step 2: l = ceil(dkLen / hLen) blocks; INT(i) is 4 octets, big-endian.
    for i in range(1, (dklen + DIGEST_SIZE - 1) // DIGEST_SIZE + 1):
        blocks.append(_f(ikey, okey, salt + struct.pack(">I", i), iterations))
    return b"".join(blocks)[:dklen]


def _password_bytes(password):
    if isinstance(password, str):
        return password.encode("utf-8")
    return bytes(password)


def _hex(data):
    return binascii.hexlify(data).decode()


def make_password_record(password, salt=None, iterations=DEFAULT_ITERATIONS):
    """"pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>" for a str (UTF-8)
    or bytes password; a fresh 16-byte salt unless one is given."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError("iterations must be 1..%d" % MAX_ITERATIONS)
    if salt is None:
        salt = urandom(SALT_SIZE)
    if len(salt) < MIN_SALT_SIZE:
        raise ValueError("salt must be at least %d bytes" % MIN_SALT_SIZE)
    digest = pbkdf2_hmac_sha256(_password_bytes(password), salt, iterations)
    return "%s$%d$%s$%s" % (SCHEME, iterations, _hex(salt), _hex(digest))


def _unhex(text, what):
    try:
        data = binascii.unhexlify(text)
    except (ValueError, TypeError):
        raise ValueError("%s is not hex" % what)
    if _hex(data) != text:  # only the lower-case form make_password_record writes
        raise ValueError("%s is not lower-case hex" % what)
    return data


def parse_password_record(record):
    """(iterations, salt, hash) of a record; ValueError saying what is wrong."""
    if not isinstance(record, str):
        raise ValueError("password record is not a string")
    parts = record.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError("password record is not %s$<iterations>$<salt>$<hash>" % SCHEME)
    count = parts[1]
    # Canonical decimal only: int() would also take " 7", "+7", "0_7".
    if not count.isdigit() or str(int(count)) != count:
        raise ValueError("iteration count is not a decimal number")
    iterations = int(count)
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError("iteration count must be 1..%d" % MAX_ITERATIONS)
    salt = _unhex(parts[2], "salt")
    if len(salt) < MIN_SALT_SIZE:
        raise ValueError("salt is shorter than %d bytes" % MIN_SALT_SIZE)
    digest = _unhex(parts[3], "hash")
    if len(digest) != DIGEST_SIZE:
        raise ValueError("hash is not %d bytes" % DIGEST_SIZE)
    return iterations, salt, digest


def equal(a, b):
    """a == b in a time that depends on the length only, not on where the
    first difference is (no early exit)."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


def check_password(record, password):
    """True if password matches the record; False for a wrong password or a
    malformed record. As with any HMAC-based PBKDF2, passwords that differ
    only by trailing NULs (up to 64 bytes) match: RFC 2104 pads the key."""
    try:
        iterations, salt, digest = parse_password_record(record)
    except ValueError:
        return False
    return equal(pbkdf2_hmac_sha256(_password_bytes(password), salt, iterations), digest)
