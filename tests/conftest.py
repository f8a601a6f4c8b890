"""Shared helpers: the real peers (DCMTK, dicom3tools, Node) by path, bounded
in time. A peer that is missing fails the test that needs it: .ci/run
installs every one, so a missing tool is a broken set-up, not a skip."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool(name):
    """The path of a peer's executable. DCMTK and dicom3tools come first
    from /usr/bin: pynetdicom installs Python scripts named like DCMTK's
    (storescp, ...) that would otherwise shadow them on PATH."""
    for candidate in ("/usr/bin/" + name, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("%s is not installed; run .ci/run (or the README's test command) to install the peers" % name)


def run(args, timeout=120, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def dciodvfy(path):
    """(errors, warnings) that dicom3tools' dciodvfy reports for a file.
    The DICOMDIR-readiness warnings are about a media profile, not the IOD."""
    result = run([tool("dciodvfy"), path])
    lines = (result.stdout + result.stderr).splitlines()
    errors = [l for l in lines if l.startswith("Error")]
    warnings = [l for l in lines if l.startswith("Warning") and "DICOMDIR" not in l]
    return errors, warnings


def dcmdump(path, *options):
    """dcmdump's output; fails the test on any warning or error it prints."""
    result = run([tool("dcmdump"), *options, path])
    assert result.returncode == 0, result.stderr
    noise = [l for l in result.stderr.splitlines() if l.strip()]
    assert not noise, "dcmdump complained: %s" % noise
    return result.stdout


def modgate(*args, timeout=300, **kwargs):
    """Runs the installed CLI the way a user does (python -m keeps it the
    same interpreter as the tests)."""
    return run([sys.executable, "-m", "firmware.cli", *args], timeout=timeout, cwd=ROOT, **kwargs)
