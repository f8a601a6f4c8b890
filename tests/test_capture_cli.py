"""The capture command's contract: one line naming the bad argument, exit 2."""

import pytest

from tests.conftest import modgate


@pytest.mark.parametrize(
    "args,argument",
    [
        (["--frames", "0"], "--frames"),
        (["--frames", "x"], "--frames"),
        (["--size", "64"], "--size"),
        (["--size", "0x48"], "--size"),
        (["--iod", "ct"], "--iod"),
        (["--pixel", "mono16", "--iod", "video-endoscopic"], "--pixel"),
        (["--rate", "-5"], "--rate"),
        (["--patient-name", "a" * 65], "--patient-name"),
        (["--patient-id", "back\\slash"], "--patient-id"),
        (["--accession", "A" * 17], "--accession"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path, args, argument):
    base = {"--frames": "1", "--out": str(tmp_path)}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["capture"] + [x for kv in base.items() for x in kv]
    result = modgate(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert argument in lines[0]
    assert not list(tmp_path.iterdir())


def test_missing_out_is_named(tmp_path):
    result = modgate("capture", "--frames", "1")
    assert result.returncode == 2 and "--out" in result.stderr


def test_demo_writes_each_iod(tmp_path):
    result = modgate("demo", "--frames", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(str(tmp_path)) >= 6
    assert len(list(tmp_path.glob("*.dcm"))) == 5 + 2  # 5 multi-frame, 2 stills
