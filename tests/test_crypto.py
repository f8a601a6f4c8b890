"""firmware.compat.crypto against CPython's hmac and hashlib.pbkdf2_hmac, the
RFC 7914 section 11 PBKDF2-HMAC-SHA256 vectors, and the same vectors on a
real MicroPython (the WebAssembly port under Node, as in test_micropython)."""

import hashlib
import hmac
import json

import pytest

from firmware.compat import crypto
from firmware.compat.crypto import (
    DEFAULT_ITERATIONS,
    check_password,
    hmac_sha256,
    make_password_record,
    parse_password_record,
    pbkdf2_hmac_sha256,
)
from tests.test_micropython import micropython

# RFC 7914 11: PBKDF2-HMAC-SHA256 (P, S, c, dkLen) = DK.
RFC7914 = [
    (b"passwd", b"salt", 1, 64,
     "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
     "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"),
    (b"Password", b"NaCl", 80000, 64,
     "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
     "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"),
]

# Keys shorter than, equal to and longer than SHA-256's 64-byte block
# (RFC 2104 2: a longer key is hashed first), and one a byte either side.
KEYS = [b"", b"k", b"key", bytes(range(32)), bytes(range(63)), bytes(range(64)),
        bytes(range(65)), bytes(range(200)), b"\xff" * 64]
MESSAGES = [b"", b"The quick brown fox jumps over the lazy dog", bytes(range(256)) * 3]

# (password, salt, iterations, dklen): one and several blocks, a dklen that
# is not a multiple of 32, long passwords (hashed as HMAC keys).
PBKDF2 = [
    (b"password", b"salt", 1, 32),
    (b"password", b"salt", 2, 32),
    (b"password", b"salt", 4096, 20),
    (b"", b"", 3, 32),
    (b"p" * 64, b"s" * 16, 10, 33),
    (b"p" * 100, bytes(range(40)), 7, 100),
    ("sécret".encode(), b"\x00" * 16, 1000, 1),
    (bytes(range(256)), b"salt", 2, 64),
]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: "key%d" % len(k))
def test_hmac_matches_python(key):
    for msg in MESSAGES:
        assert hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_hmac_rfc4231_case_2():
    # RFC 4231 4.3: Key = "Jefe", data = "what do ya want for nothing?".
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


@pytest.mark.parametrize("use_copy", [True, False], ids=["copy", "no-copy"])
@pytest.mark.parametrize("password,salt,iterations,dklen", PBKDF2)
def test_pbkdf2_matches_hashlib(password, salt, iterations, dklen, use_copy):
    """Both inner loops: with sha256.copy() (CPython) and without it
    (MicroPython, which has none)."""
    ikey, okey = crypto._pads(password)
    first = crypto._f(ikey, okey, salt + b"\x00\x00\x00\x01", iterations, use_copy)
    ours = pbkdf2_hmac_sha256(password, salt, iterations, dklen, native=None)  # the loop MicroPython runs
    theirs = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, dklen)
    assert ours == theirs
    assert first == hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)


@pytest.mark.parametrize("password,salt,iterations,dklen,expected", RFC7914, ids=["passwd", "Password"])
def test_pbkdf2_rfc7914(password, salt, iterations, dklen, expected):
    assert pbkdf2_hmac_sha256(password, salt, iterations, dklen, native=None).hex() == expected
    assert pbkdf2_hmac_sha256(password, salt, iterations, dklen).hex() == expected
    assert hashlib.pbkdf2_hmac("sha256", password, salt, iterations, dklen).hex() == expected


def test_pbkdf2_refuses_bad_arguments():
    for iterations, dklen in ((0, 32), (-1, 32), (1, 0)):
        with pytest.raises(ValueError):
            pbkdf2_hmac_sha256(b"p", b"salt", iterations, dklen)


def test_a_new_record_uses_the_default_iterations():
    # What they cost (about 0.1 s on CPython here) is in
    # firmware/compat/crypto.py; no timing is asserted in a test.
    record = make_password_record("technician")
    assert record.startswith("pbkdf2-sha256$%d$" % DEFAULT_ITERATIONS)


def test_record_round_trip():
    record = make_password_record("sécret", iterations=1000)
    scheme, count, salt, digest = record.split("$")
    assert (scheme, count) == ("pbkdf2-sha256", "1000")
    assert len(bytes.fromhex(salt)) == 16 and salt == salt.lower()
    assert digest == hashlib.pbkdf2_hmac("sha256", "sécret".encode(), bytes.fromhex(salt), 1000).hex()
    assert parse_password_record(record) == (1000, bytes.fromhex(salt), bytes.fromhex(digest))
    assert check_password(record, "sécret")
    assert check_password(record, "sécret".encode())
    # A fresh salt every time: the same password gives another record.
    assert make_password_record("sécret", iterations=1000) != record


def test_record_with_given_salt_is_deterministic():
    salt = bytes(range(16))
    a = make_password_record("pw", salt=salt, iterations=10)
    assert a == make_password_record("pw", salt=salt, iterations=10)
    assert a == "pbkdf2-sha256$10$%s$%s" % (salt.hex(), hashlib.pbkdf2_hmac("sha256", b"pw", salt, 10).hex())


def test_wrong_password_is_false():
    record = make_password_record("right", iterations=100)
    for wrong in ("wrong", "", "righ", "right ", "Right", "rightright", "r" * 100):
        assert not check_password(record, wrong)
    # RFC 2104 pads the key with zeros, so "right\0" is the same HMAC key as
    # "right" (hashlib agrees). The console's line editor admits printable
    # ASCII only, so a password never ends in NUL.
    assert check_password(record, "right\x00")


def test_tampered_record_is_false():
    record = make_password_record("pw", iterations=100)
    scheme, count, salt, digest = record.split("$")
    flip = lambda h: ("0" if h[0] != "0" else "1") + h[1:]
    # Well-formed, but not what was written: the hash does not match.
    changed = [
        "$".join((scheme, "101", salt, digest)),         # iteration count
        "$".join((scheme, count, flip(salt), digest)),    # salt
        "$".join((scheme, count, salt, flip(digest))),    # hash
    ]
    # Malformed: refused before any hashing.
    malformed = [
        "$".join((scheme, "0100", salt, digest)),        # same number, not canonical
        "$".join((scheme, " 100", salt, digest)),
        "$".join((scheme, "1_00", salt, digest)),
        "$".join((scheme, "0", salt, digest)),
        "$".join((scheme, "99999999999", salt, digest)),  # over MAX_ITERATIONS
        "$".join((scheme, count, salt, digest[:-2])),     # short hash
        "$".join((scheme, count, salt, digest + "00")),   # long hash
        "$".join((scheme, count, salt, digest.upper())),  # not the written form
        "$".join((scheme, count, salt[:8], digest)),      # salt under 8 bytes
        "$".join((scheme, count, salt, "zz" + digest[2:])),
        "$".join(("pbkdf2-sha1", count, salt, digest)),
        "$".join((scheme, count, salt)),
        record + "$",
        "",
        None,
    ]
    assert check_password(record, "pw")
    for bad in changed:
        parse_password_record(bad)
        assert not check_password(bad, "pw"), bad
    for bad in malformed:
        assert not check_password(bad, "pw"), bad
        with pytest.raises(ValueError):
            parse_password_record(bad)


def test_make_record_refuses_bad_arguments():
    for kwargs in ({"iterations": 0}, {"iterations": crypto.MAX_ITERATIONS + 1}, {"salt": b"1234567"}):
        with pytest.raises(ValueError):
            make_password_record("pw", **kwargs)


def test_equal():
    assert crypto.equal(b"abc", b"abc") and crypto.equal(b"", b"")
    assert not crypto.equal(b"abc", b"abd") and not crypto.equal(b"abc", b"ab")


MP_SCRIPT = """
import json, sys
from firmware.compat import crypto
assert sys.implementation.name == "micropython"
assert not crypto._HAS_COPY  # the loop MicroPython runs is the no-copy one
cases = json.loads(CASES)
out = {}
for name, kind, key, msg, iterations, dklen in cases:
    key = bytes.fromhex(key)
    msg = bytes.fromhex(msg)
    if kind == "hmac":
        out[name] = crypto.hmac_sha256(key, msg).hex()
    else:
        out[name] = crypto.pbkdf2_hmac_sha256(key, msg, iterations, dklen).hex()
record = crypto.make_password_record("s\\u00e9cret", iterations=50)
out["record-ok"] = crypto.check_password(record, "s\\u00e9cret")
out["record-wrong"] = crypto.check_password(record, "secret")
out["record-tampered"] = crypto.check_password(record[:-1] + ("0" if record[-1] != "0" else "1"), "s\\u00e9cret")
out["record"] = record
print(json.dumps(out))
"""


def test_same_results_on_micropython(tmp_path):
    cases = [("rfc7914-1", "pbkdf2", "passwd", "salt", 1, 64)]
    for i, key in enumerate((b"k", bytes(range(64)), bytes(range(65)), bytes(range(200)))):
        cases.append(("hmac-%d" % len(key), "hmac", key, b"message %d" % i, 0, 0))
    cases += [
        ("pbkdf2-1", "pbkdf2", b"password", b"salt", 1, 32),
        ("pbkdf2-1000", "pbkdf2", b"password", b"salt", 1000, 32),
        ("pbkdf2-long", "pbkdf2", b"p" * 100, bytes(range(16)), 1000, 70),
    ]
    cases = [(n, kind, k if isinstance(k, bytes) else k.encode(), m if isinstance(m, bytes) else m.encode(), c, d)
             for n, kind, k, m, c, d in cases]
    expected = {}
    for name, kind, key, msg, iterations, dklen in cases:
        if kind == "hmac":
            expected[name] = hmac.new(key, msg, hashlib.sha256).hexdigest()
        else:
            expected[name] = hashlib.pbkdf2_hmac("sha256", key, msg, iterations, dklen).hex()
    assert expected["rfc7914-1"] == RFC7914[0][4]
    script = tmp_path / "crypto_mp.py"
    arg = json.dumps([(n, kind, k.hex(), m.hex(), c, d) for n, kind, k, m, c, d in cases])
    script.write_text("CASES = %r\n" % arg + MP_SCRIPT)
    result = micropython(str(script), "firmware", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    theirs = json.loads(result.stdout)
    for name in expected:
        assert theirs[name] == expected[name], name
    assert theirs["record-ok"] is True
    assert theirs["record-wrong"] is False and theirs["record-tampered"] is False
    # A record made on MicroPython checks on CPython.
    assert check_password(theirs["record"], "sécret")

