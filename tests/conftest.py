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
    for candidate in ("/usr/bin/" + name, "/usr/sbin/" + name, shutil.which(name)):
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
    return run([sys.executable, "-m", "tools.cli", *args], timeout=timeout, cwd=ROOT, **kwargs)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0):
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nothing listens on port %d after %.0f s" % (port, timeout))


class Storescp:
    """DCMTK's storescp on a loopback port, stopped at the end. Note that
    wait_for_port makes one empty connection, which storescp just logs."""

    def __init__(self, out_dir, *options, port=None):
        self.out_dir = str(out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [tool("storescp"), "-od", self.out_dir, *options, str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        wait_for_port(self.port)

    def files(self):
        return sorted(os.path.join(self.out_dir, f) for f in os.listdir(self.out_dir))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def storescp(tmp_path):
    started = []

    def start(*options):
        out = tmp_path / ("rx%d" % len(started))
        out.mkdir()
        scp = Storescp(out, *options)
        started.append(scp)
        return scp

    yield start
    for scp in started:
        scp.stop()


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """A few small objects from the encoder: {name: path}."""
    from firmware.capture import capture_object
    from firmware.dicom import tags
    from hal.acq.sim import SimBoard

    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for name, iod, pixel, size, frames in (
        ("video", "video-endoscopic", "rgb8", (64, 48), 5),
        ("word", "mf-grayscale-word-sc", "mono16", (33, 17), 3),
        ("still", "vl-endoscopic", "rgb8", (32, 24), 1),
        ("big", "mf-true-color-sc", "rgb8", (640, 480), 12),
    ):
        board = SimBoard(size[0], size[1], pixel)
        board.start()
        path = str(folder / (name + ".dcm"))
        with open(path, "wb") as out:
            capture_object(out, board, frames, iod, (2026, 11, 23, 10, 0, 0, 0), {tags.PatientID: "P-" + name})
        made[name] = path
    return made
