"""tests/conftest.py's policy on skips: a test that needs something of the
machine (machine_lacks) fails where it is missing unless MODGATE_MAY_SKIP
lists it, and a run that ends with any skip not so allowed fails, whatever
raised it (pytest.skip, a skipif mark, pytest.importorskip, a plugin).

The real call sites are run here with their capability check made to fail
(each site's own probe monkeypatched), and small suites under the policy in
a pytest subprocess (pytester)."""

import os
import re
import subprocess
import types

import pytest

from tests import conftest
from tests.conftest import MAY_SKIP, ROOT


@pytest.fixture
def unset(monkeypatch):
    monkeypatch.delenv(MAY_SKIP, raising=False)
    return monkeypatch


# -- the real call sites, their probe made to fail -------------------------------


def _no_net_raw_bind(monkeypatch):
    from hal.nic import LinuxNIC
    from tests import test_nic

    def bind(self, sock, port=0):
        raise PermissionError(1, "binding a socket to lo needs CAP_NET_RAW on this kernel")

    monkeypatch.setattr(LinuxNIC, "bind", bind)
    return lambda tmp_path: test_nic.test_bind_puts_the_socket_on_the_interface()


def _no_net_raw_capture(monkeypatch):
    from tests import test_stream

    def capture(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(test_stream, "Capture", capture)
    return test_stream.test_pacing_at_the_interface


def _no_mount(monkeypatch):
    from tests import test_faults

    real = subprocess.run

    def run(args, *rest, **kwargs):
        if args[0] == "mount":
            return subprocess.CompletedProcess(args, 32, "", "mount: only root can do that")
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(test_faults.subprocess, "run", run)
    return test_faults.test_disk_full_while_recording_abandons_that_clip_and_keeps_sending


def _no_vhangup(monkeypatch):
    from tests import test_uart

    real = test_uart.fcntl

    def ioctl(fd, request, *args):
        if request == test_uart.TIOCVHANGUP:
            raise PermissionError(1, "Operation not permitted")
        return real.ioctl(fd, request, *args)

    monkeypatch.setattr(test_uart, "fcntl", types.SimpleNamespace(ioctl=ioctl))
    return lambda tmp_path: test_uart.test_tty_hang_up_is_eof_once_then_the_device_is_opened_again()


SITES = {"net_raw bind": ("net_raw", _no_net_raw_bind), "net_raw capture": ("net_raw", _no_net_raw_capture),
         "mount": ("mount", _no_mount), "vhangup": ("vhangup", _no_vhangup)}


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_missing_capability_fails_loudly(unset, tmp_path, site):
    capability, lack = SITES[site]
    test = lack(unset)
    with pytest.raises(pytest.fail.Exception) as failed:
        test(tmp_path)
    message = str(failed.value)
    assert "this machine lacks %s" % capability in message, message
    assert "%s=%s" % (MAY_SKIP, capability) in message, message  # how to opt out
    assert "CI must have it" in message


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_missing_capability_skips_only_when_listed(unset, tmp_path, site):
    capability, lack = SITES[site]
    test = lack(unset)
    for n in "123":
        (tmp_path / n).mkdir()
    other = "qemu" if capability != "qemu" else "mount"
    unset.setenv(MAY_SKIP, other)
    with pytest.raises(pytest.fail.Exception):
        test(tmp_path / "1")
    unset.setenv(MAY_SKIP, " %s , %s" % (other, capability))
    with pytest.raises(pytest.skip.Exception, match="machine lacks %s" % capability):
        test(tmp_path / "2")
    unset.setenv(MAY_SKIP, "all")
    with pytest.raises(pytest.skip.Exception):
        test(tmp_path / "3")


def test_every_capability_is_documented_in_the_readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert MAY_SKIP in readme
    for name in conftest.CAPABILITIES:
        assert "`%s`" % name in readme, name


def test_ci_does_not_opt_out():
    """.ci/run sets no MODGATE_MAY_SKIP, and unsets one the machine has."""
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        script = f.read()
    assert not re.search(r"\b%s\s*=" % MAY_SKIP, script)
    before, _, _ = script.partition("python3 -m pytest")
    assert "\nunset %s\n" % MAY_SKIP in before


# -- whole runs under the policy ------------------------------------------------------


@pytest.fixture
def suite(pytester, unset):
    """Runs a small suite in a pytest subprocess with tests/conftest.py as
    its plugin: (exit code, outcomes, output)."""
    unset.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makeconftest('pytest_plugins = ["tests.conftest"]\n')

    def run(source, may_skip=None, *args):
        if may_skip is None:
            unset.delenv(MAY_SKIP, raising=False)
        else:
            unset.setenv(MAY_SKIP, may_skip)
        pytester.makepyfile(test_inner=source)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        output = result.stdout.str() + result.stderr.str()
        outcomes = result.parseoutcomes() if result.ret in (0, 1) else {}
        return result.ret, outcomes, output

    return run


LACKS = """
from tests.conftest import machine_lacks

def test_needs_raw_sockets():
    machine_lacks("net_raw", "simulated: no CAP_NET_RAW here")

def test_fine():
    pass
"""


def test_run_fails_when_a_capability_is_missing(suite):
    ret, outcomes, output = suite(LACKS)
    assert ret == 1 and outcomes == {"failed": 1, "passed": 1}, output
    assert "this machine lacks net_raw: simulated: no CAP_NET_RAW here" in output
    assert "MODGATE_MAY_SKIP=net_raw skips the tests that need it" in output


def test_run_passes_with_the_capability_listed(suite):
    ret, outcomes, output = suite(LACKS, "net_raw")
    assert ret == 0 and outcomes == {"passed": 1, "skipped": 1}, output
    assert "skips allowed (tests/conftest.py)" in output
    assert "test_inner.py::test_needs_raw_sockets: Skipped: machine lacks net_raw (allowed by MODGATE_MAY_SKIP)" in output
    ret, outcomes, output = suite(LACKS, "qemu,vhangup")
    assert ret == 1 and outcomes == {"failed": 1, "passed": 1}, output


def test_unknown_name_in_the_variable_stops_the_run(suite):
    ret, _, output = suite(LACKS, "net_raw,vivid")
    assert ret == pytest.ExitCode.USAGE_ERROR, output
    assert "MODGATE_MAY_SKIP=net_raw,vivid: unknown vivid" in output


OTHER_SKIPS = {
    "skip": "import pytest\ndef test_x():\n    pytest.skip('no reason the policy knows')\n",
    "skipif": "import pytest\n@pytest.mark.skipif(True, reason='a mark')\ndef test_x():\n    pass\n",
    "skip_mark": "import pytest\n@pytest.mark.skip\ndef test_x():\n    pass\n",
    "fixture": "import pytest\n@pytest.fixture\ndef f():\n    pytest.skip('in a fixture')\ndef test_x(f):\n    pass\n",
    "importorskip": "import pytest\nmissing = pytest.importorskip('no_such_module_modgate')\ndef test_x():\n    pass\n",
    "module_level": "import pytest\npytest.skip('the whole module', allow_module_level=True)\ndef test_x():\n    pass\n",
    # a text like machine_lacks' passes only for a capability that is listed
    "forged": "import pytest\ndef test_x():\n    pytest.skip('machine lacks qemu (allowed by MODGATE_MAY_SKIP): forged')\n",
}


def test_any_other_skip_fails_the_run(suite, pytester):
    pytester.makepyfile(**{"test_" + name: source for name, source in OTHER_SKIPS.items()})
    ret, outcomes, output = suite("def test_fine():\n    pass\n")
    assert ret == 1, output
    assert outcomes == {"passed": 1, "skipped": len(OTHER_SKIPS)}, output  # the run fails, not a test
    assert "skips not allowed (tests/conftest.py)" in output, output
    assert "%d skip(s) that MODGATE_MAY_SKIP does not allow" % len(OTHER_SKIPS) in output, output
    for name in OTHER_SKIPS:
        assert "test_%s.py" % name in output, name
    ret, _, output = suite("def test_fine():\n    pass\n", "net_raw,mount")
    assert ret == 1, output  # a capability listed allows that capability's skips only
    assert "%d skip(s) that MODGATE_MAY_SKIP does not allow" % len(OTHER_SKIPS) in output, output
    ret, _, output = suite("def test_fine():\n    pass\n", "qemu")
    assert "%d skip(s) that MODGATE_MAY_SKIP does not allow" % (len(OTHER_SKIPS) - 1) in output, output
    ret, _, output = suite("def test_fine():\n    pass\n", "all")
    assert ret == 0, output


def test_a_plugins_skip_fails_the_run(suite, pytester):
    pytester.makepyfile(plugin_skipper="""
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    pytest.skip("a third-party plugin said so")
""")
    ret, outcomes, output = suite("def test_x():\n    pass\n", None, "-p", "plugin_skipper")
    assert ret == 1 and outcomes == {"skipped": 1}, output
    assert "a third-party plugin said so" in output


def test_does_not_apply_xfail_and_deselection_are_no_skips(suite):
    ret, outcomes, output = suite("""
import pytest
from tests.conftest import does_not_apply

def test_case_without_meaning_here():
    does_not_apply("simulated: this host has the device that the case is about the absence of")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_bug():
    assert False

def test_deselected():
    pass
""", None, "-k", "not deselected")
    assert ret == 0 and outcomes == {"skipped": 1, "xfailed": 1, "deselected": 1}, output
    assert "skips allowed (tests/conftest.py)" in output  # listed all the same, without -rs
    assert "does not apply here: simulated: this host has the device" in output


def test_qemu_missing_fails_the_emulator_tests(suite, pytester):
    """tests/test_emulator.py's own path, without booting anything: with no
    qemu-system-aarch64 its tests fail before the image is built."""
    pytester.makeconftest('pytest_plugins = ["tests.conftest"]\n'
                          'import tests.test_emulator\n'
                          'tests.test_emulator.qemu_binary = lambda: None\n')
    source = "from tests.test_emulator import image, test_modgate_emulate_command_line\n"
    ret, outcomes, output = suite(source)
    assert ret == 1 and outcomes == {"errors": 1}, output
    assert "this machine lacks qemu: qemu-system-aarch64 is not installed" in output
    ret, outcomes, output = suite(source, "qemu")
    assert ret == 0 and outcomes == {"skipped": 1}, output
