"""Shared helpers: the real peers (DCMTK, dicom3tools, Node) by path, bounded
in time. A peer that is missing fails the test that needs it: .ci/run
installs every one, so a missing tool is a broken set-up, not a skip.

The same holds for what a test needs of the machine itself (CAPABILITIES:
QEMU for the emulated box, CAP_NET_RAW, mounting a tmpfs, vhangup): a test
that finds it missing calls machine_lacks(capability, why), which fails the
test, naming what is missing and how to opt out. The development and CI
machines have all four. A developer whose machine lacks one may opt out
explicitly with the environment variable MODGATE_MAY_SKIP, a comma-separated
list of capability names (MODGATE_MAY_SKIP=qemu,net_raw): those tests are
then skipped instead. MODGATE_MAY_SKIP=all also lets any other skip pass
(pytest.importorskip, a plugin's). CI (.ci/run) never sets it, and unsets it.

No skip hides: every skip is listed at the end of the run, and a run that
ends with a skip that MODGATE_MAY_SKIP does not allow fails (exit status 1),
whatever raised it (pytest.skip, a skipif mark, pytest.importorskip, a
plugin). The one kind of skip that needs no opt-out is does_not_apply(why):
a case that has no meaning on this machine (not one that cannot run on it)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest_plugins = ["pytester"]  # tests/test_conftest_policy.py runs small suites under this policy

# What a test may need of the machine, and what provides it. A name here is
# what MODGATE_MAY_SKIP lists.
CAPABILITIES = {
    "qemu": "qemu-system-aarch64, for the emulated box (Debian: qemu-system-arm; .ci/run installs it)",
    "net_raw": "CAP_NET_RAW, for packet capture and SO_BINDTODEVICE (run as root)",
    "mount": "CAP_SYS_ADMIN, to mount a tmpfs (run as root)",
    "vhangup": "CAP_SYS_ADMIN, for the TIOCVHANGUP ioctl on a pty (run as root)",
}
MAY_SKIP = "MODGATE_MAY_SKIP"
_LACKS = "machine lacks %s (allowed by " + MAY_SKIP + "): %s"
_LACKS_RE = re.compile(r"machine lacks (\w+) \(allowed by " + MAY_SKIP + r"\)")
_DOES_NOT_APPLY = "does not apply here: "


def may_skip():
    """The capability names MODGATE_MAY_SKIP lists ("all" for any skip)."""
    names = {n.strip() for n in os.environ.get(MAY_SKIP, "").split(",") if n.strip()}
    unknown = names - set(CAPABILITIES) - {"all"}
    if unknown:
        raise pytest.UsageError("%s=%s: unknown %s; the names are: all, %s" % (
            MAY_SKIP, os.environ[MAY_SKIP], ", ".join(sorted(unknown)), ", ".join(sorted(CAPABILITIES))))
    return names


def machine_lacks(capability, why):
    """Called by a test that found this machine without `capability` (a key
    of CAPABILITIES): fails the test, unless MODGATE_MAY_SKIP lists it (or
    "all"), and then skips it. Never returns."""
    assert capability in CAPABILITIES, capability
    allowed = may_skip()
    if capability in allowed or "all" in allowed:
        pytest.skip(_LACKS % (capability, why))
    pytest.fail("this machine lacks %s: %s. %s means %s. CI must have it (.ci/run); on a developer's "
                "machine, %s=%s skips the tests that need it instead" % (
                    capability, why, capability, CAPABILITIES[capability], MAY_SKIP, capability), pytrace=False)


def does_not_apply(why):
    """Skips a case that has no meaning on this machine (not one that cannot
    run on it: that is machine_lacks). Allowed without MODGATE_MAY_SKIP, and
    listed at the end of the run all the same, as every skip is."""
    pytest.skip(_DOES_NOT_APPLY + why)


# The skip guard: every skipped report (test setup, call, teardown, and
# collection: pytest.importorskip and module-level skips), whatever raised it.

_skips = pytest.StashKey()
_config = []


def pytest_configure(config):
    may_skip()  # a misspelt name stops the run at once
    config.stash[_skips] = []
    _config[:] = [config]


def _note_skip(config, report):
    if not report.skipped or hasattr(report, "wasxfail"):
        return  # an xfail is reported as skipped but is no skip
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    config.stash[_skips].append((report.nodeid, reason))


def pytest_runtest_logreport(report):
    _note_skip(_config[0], report)


def pytest_collectreport(report):
    _note_skip(_config[0], report)


def _sorted_skips(config):
    """(allowed, refused): the run's skips, each (node id, reason)."""
    allowed_names = may_skip()
    allowed, refused = [], []
    for nodeid, reason in config.stash.get(_skips, []):
        text = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
        lacked = _LACKS_RE.match(text)
        ok = ("all" in allowed_names or text.startswith(_DOES_NOT_APPLY)
              or (lacked is not None and lacked.group(1) in allowed_names))
        (allowed if ok else refused).append((nodeid or "<collection>", reason))
    return allowed, refused


def pytest_sessionfinish(session, exitstatus):
    if _sorted_skips(session.config)[1] and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Every skip is listed, also without -rs; those not allowed fail the run."""
    allowed, refused = _sorted_skips(config)
    if allowed:
        terminalreporter.section("skips allowed (tests/conftest.py)", yellow=True)
        for nodeid, reason in allowed:
            terminalreporter.line("%s: %s" % (nodeid, reason))
    if refused:
        terminalreporter.section("skips not allowed (tests/conftest.py)", red=True, bold=True)
        for nodeid, reason in refused:
            terminalreporter.line("%s: %s" % (nodeid, reason))
        terminalreporter.line("%d skip(s) that %s does not allow: the run fails. A test that needs something of "
                              "the machine calls machine_lacks(); %s=all lets any skip pass." % (
                                  len(refused), MAY_SKIP, MAY_SKIP), red=True)


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


def stop_process(proc, timeout=10):
    """SIGTERM a peer the test started, SIGKILL if it does not go in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def watch_descriptors(monkeypatch, module):
    """(opened, closed): the file descriptors module opens and closes with
    os.open and os.close from now to the test's end. A driver's own
    descriptors, where counting the process's would count other tests'
    threads and sockets too."""
    opened, closed = [], []

    class Watched:
        def __getattr__(self, name):
            return getattr(os, name)

        def open(self, *args):
            opened.append(os.open(*args))
            return opened[-1]

        def close(self, fd):
            closed.append(fd)
            os.close(fd)

    monkeypatch.setattr(module, "os", Watched())
    return opened, closed


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
        stop_process(self.proc)


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


def http(port, path, body=None):
    """Orthanc's REST API on loopback: the response's bytes."""
    import urllib.request

    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


class Orthanc:
    """Debian's Orthanc with a configuration of the test's own on loopback
    ports (AE title ORTHANC), stopped by stop(). dicom_port: the one it had
    before a restart. extra: more configuration (plugins,
    DicomModalities...)."""

    def __init__(self, folder, dicom_port=None, **extra):
        self.dicom_port, self.http_port = dicom_port or free_port(), free_port()
        config = {
            "Name": "modgate-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "DicomAet": "ORTHANC",
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "StorageCompression": False,
            "Plugins": [],
        }
        config.update(extra)
        path = folder / "orthanc.json"
        path.write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "w")
        self.proc = subprocess.Popen([tool("Orthanc"), str(path)], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.http_port, timeout=30)
            wait_for_port(self.dicom_port, timeout=30)
        except BaseException:
            self.stop()
            raise

    def rest(self, path, body=None):
        return json.loads(http(self.http_port, path, body))

    def stop(self):
        stop_process(self.proc, 15)
        self.log.close()
