"""The capture command's contract: one line naming the bad argument, exit 2."""

import pytest

from firmware.capture import capture_object
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


def test_demo_records_stores_and_verifies(tmp_path):
    """The README's main job: the whole gateway, its procedure from the
    local PACS's worklist, into its storage, committed."""
    result = modgate("demo", "--clips", "2", "--frames", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("2 clips recorded, 2 received, 2 verified, 2 committed; spool: 0 waiting, 0 awaiting commitment, "
            "0 quarantined") in result.stdout
    # Recorded as H.264 (the video IOD's default), decoded by FFmpeg and
    # compared with the pattern (tools/receiver.check_h264_clip).
    assert " frames as h264 -> spool " in result.stdout
    assert result.stdout.count("received, H.264 decoded within ") == 2, result.stdout
    assert "worklist:  1  " in result.stdout and "Müller^Anna  DEMO-0001  DEMO-ACC-1  Colonoscopy" in result.stdout
    assert "procedure: Müller^Anna, ID DEMO-0001, accession DEMO-ACC-1, study " in result.stdout
    assert "procedure completed: 2 clips; MPPS COMPLETED queued" in result.stdout
    assert ": COMPLETED, 2 instances in its Performed Series Sequence" in result.stdout
    assert len(list((tmp_path / "received").glob("*.dcm"))) == 2


def test_demo_check_finds_a_changed_pixel(tmp_path):
    from firmware.recorder import Clip
    from hal.acq.sim import Pattern, SimBoard
    from tools.receiver import check_clip

    board = SimBoard(16, 8, "rgb8")
    board.start()
    path = tmp_path / "clip.dcm"
    with open(path, "wb") as out:
        encoder = capture_object(out, board, 3, "video-endoscopic", (2026, 11, 23, 10, 0, 0, 0))
    clip = Clip("x", encoder.sop_instance_uid, 0, 3, 1)
    assert check_clip(str(path), clip, Pattern("rgb8", 16, 8)) == []
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    assert check_clip(str(path), clip, Pattern("rgb8", 16, 8)) == ["pixel data differs from the pattern"]
    assert "3 frames, expected 1" in check_clip(str(path), Clip("x", encoder.sop_instance_uid, 0, 1, 1), Pattern("rgb8", 16, 8))[0]


def test_out_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = modgate("capture", "--frames", "1", "--out", str(blocker / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and "Traceback" not in result.stderr, lines


def test_frame_size_bounded_by_the_memory_budget(tmp_path):
    """The host board's 64 MiB budget, a quarter of it a frame: a frame of
    60000x60000 rgb8 (10 GiB) is refused with the numbers before any
    memory is taken for it."""
    result = modgate("capture", "--frames", "1", "--size", "60000x60000", "--out", str(tmp_path), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--size" in lines[0] and "16.0 MiB" in lines[0], lines
    assert not list(tmp_path.iterdir())
