"""The host commands' contract for arguments that cannot work: one line on
stderr naming the argument, exit status 2, no traceback, nothing written.
(`capture` has its own in test_capture_cli.py, `stream` in test_stream.py,
`console` in test_console_client.py.)"""

import pytest

from tests.conftest import modgate


def one_line_exit_2(result, argument):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert argument in lines[0], lines
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["echo", "store"])
@pytest.mark.parametrize("argv,argument", [
    (["no-such-host.invalid", "104"], "host"),
    (["", "104"], "host"),
    (["--connect-timeout", "-1", "127.0.0.1", "104"], "--connect-timeout"),
    (["--acse-timeout", "0", "127.0.0.1", "104"], "--acse-timeout"),
    (["--dimse-timeout", "nan", "127.0.0.1", "104"], "--dimse-timeout"),
    (["--network-timeout", "inf", "127.0.0.1", "104"], "--network-timeout"),
    (["--aec", "", "127.0.0.1", "104"], "--aec"),
    (["--aet", "    ", "127.0.0.1", "104"], "--aet"),
    (["--aet", "SEVENTEEN-LETTERS", "127.0.0.1", "104"], "--aet"),
    (["--tls", "--ca", "/no/such/ca.pem", "127.0.0.1", "104"], "--ca"),
    (["--tls", "--no-verify", "--cert", "/no/such/cert.pem", "127.0.0.1", "104"], "--cert"),
    (["--tls", "--no-verify", "--key", "/etc/hostname", "127.0.0.1", "104"], "--key"),
    (["--ca", "/etc/hostname", "127.0.0.1", "104"], "--ca"),  # without --tls it would be ignored
    (["127.0.0.1", "65536"], "port"),
])
def test_echo_and_store_bad_arguments(command, argv, argument, clips):
    if command == "store":
        argv = argv + [clips["still"]]
    one_line_exit_2(modgate(command, *argv, timeout=60), argument)


def test_conformance_out_that_cannot_be_written(tmp_path):
    target = tmp_path / "no-such-folder" / "conformance.md"
    one_line_exit_2(modgate("conformance", "--out", str(target), timeout=60), "--out")
    assert not target.parent.exists()
