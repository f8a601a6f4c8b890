"""The codec HAL (hal/codec) and the compressed objects it feeds
(firmware/dicom/encoder.py, PS3.5 8.2.1 and 8.2.8): libx264's layouts
checked against x264.h by gcc; the H.264 bitstream read back by FFmpeg
(profile, level, size, frames, every frame decoded, PSNR against the
simulated pattern); objects through dciodvfy, dcmdump, pydicom and DCMTK's
storescp +xn."""

import math
import time
import subprocess

import pydicom
import pytest
from pydicom.encaps import generate_fragments

from firmware.capture import capture_object
from firmware.dicom.encoder import ObjectEncoder, check_video
from firmware.dicom.uid import JPEG_BASELINE_8BIT, MPEG4_AVC_HP41, MPEG4_AVC_HP41_BD, MPEG4_AVC_HP42_2D
from hal.acq.sim import Pattern, SimBoard
from hal.codec import CodecError, open_encoder, x264
from tests.conftest import dciodvfy, dcmdump, run, tool

NOW = (2026, 11, 26, 10, 0, 0, 0)
# PSNR of the simulated pattern through 4:2:0 H.264 and back to RGB: about
# 28-33 dB whatever the rate (the chroma subsampling of its sharp edges sets
# that ceiling, ../shared/notes/peers.md); the same frames shifted by one
# give about 24.5 dB. Above 27 dB is the right frame, decoded.
MIN_PSNR_DB = 27.0


def test_x264_layouts_match_the_header(tmp_path):
    source = tmp_path / "layout.c"
    source.write_text("\n".join([
        "#include <stddef.h>", "#include <stdint.h>", "#include <stdio.h>", "#include <x264.h>",
        "int main(void) {",
        '  printf("%d %zu %zu %zu %zu\\n", X264_BUILD, sizeof(x264_param_t), offsetof(x264_param_t, i_width),'
        ' offsetof(x264_param_t, i_height), offsetof(x264_param_t, i_csp));',
        '  printf("%zu %zu %zu %zu\\n", sizeof(x264_picture_t), offsetof(x264_picture_t, i_type),'
        ' offsetof(x264_picture_t, i_pts), offsetof(x264_picture_t, img));',
        '  printf("%zu %zu\\n", offsetof(x264_image_t, i_stride), offsetof(x264_image_t, plane));',
        '  printf("%zu %zu %zu %zu\\n", sizeof(x264_nal_t), offsetof(x264_nal_t, i_type),'
        ' offsetof(x264_nal_t, i_payload), offsetof(x264_nal_t, p_payload));',
        '  printf("%d %d\\n", X264_CSP_I420, X264_TYPE_AUTO);',
        "  return 0; }"]))
    binary = tmp_path / "layout"
    built = run([tool("gcc"), "-Wall", "-Werror", "-o", str(binary), str(source)])
    assert built.returncode == 0, built.stderr  # .ci/run installs libx264-dev
    lines = run([str(binary)]).stdout.split("\n")
    assert [int(v) for v in lines[0].split()] == [x264.X264_BUILD, x264.PARAM_SIZE, x264.PARAM_WIDTH,
                                                  x264.PARAM_HEIGHT, x264.PARAM_CSP]
    assert [int(v) for v in lines[1].split()] == [x264.PICTURE_SIZE, x264.PICTURE_TYPE, x264.PICTURE_PTS,
                                                  x264.PICTURE_IMG]
    assert [int(v) for v in lines[2].split()] == [x264.IMAGE_STRIDE, x264.IMAGE_PLANE]
    assert [int(v) for v in lines[3].split()] == [x264.NAL_SIZE, x264.NAL_TYPE, x264.NAL_PAYLOAD_LENGTH,
                                                  x264.NAL_PAYLOAD]
    assert [int(v) for v in lines[4].split()] == [x264.CSP_I420, x264.TYPE_AUTO]


def h264_object(path, width, height, frames, transfer_syntax=MPEG4_AVC_HP41, rate=(30, 1), **settings):
    board = SimBoard(width, height, "rgb8", rate=rate)
    board.start()
    codec = open_encoder("h264", width, height, "rgb8", rate, bluray=transfer_syntax == MPEG4_AVC_HP41_BD,
                         level="4.2" if transfer_syntax == MPEG4_AVC_HP42_2D else "4.1", **settings)
    with open(path, "wb") as out:
        return capture_object(out, board, frames, "video-endoscopic", NOW, {}, codec=codec,
                              transfer_syntax=transfer_syntax)


def bitstream(path):
    ds = pydicom.dcmread(path)
    fragments = list(generate_fragments(ds.PixelData))
    assert fragments[0] == b""  # the Basic Offset Table, empty (PS3.5 8.2.8)
    assert len(fragments) == 2  # the whole bitstream in one fragment
    return ds, fragments[1]


def probe(path):
    out = run([tool("ffprobe"), "-v", "error", "-count_frames", "-show_entries",
               "stream=profile,level,width,height,nb_read_frames,pix_fmt,color_range", "-of",
               "default=noprint_wrappers=1", str(path)]).stdout
    return dict(line.split("=", 1) for line in out.split())


def raw(args):
    """A command's standard output as bytes."""
    return subprocess.run(args, capture_output=True, timeout=120, check=True).stdout


def psnr_each(raw, pattern, width, height):
    size = width * height * 3
    values = []
    for k in range(len(raw) // size):
        got, want = raw[k * size:(k + 1) * size], pattern.frame(k)
        error = sum((a - b) ** 2 for a, b in zip(got[::97], want[::97])) / len(got[::97])
        values.append(99.0 if error == 0 else 10 * math.log10(255 ** 2 / error))
    return values


def test_an_h264_object_is_valid_and_decodes_to_the_pattern(tmp_path):
    path = tmp_path / "h264.dcm"
    encoder = h264_object(path, 1280, 720, 60)
    errors, _ = dciodvfy(str(path))
    assert errors == [], errors
    dump = dcmdump(str(path))
    assert "W: " not in dump and "E: " not in dump
    ds, stream = bitstream(path)
    assert ds.file_meta.TransferSyntaxUID == MPEG4_AVC_HP41 and int(ds.NumberOfFrames) == 60
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420" and ds.SamplesPerPixel == 3
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_14496_10"
    assert float(ds.LossyImageCompressionRatio) > 50 and ds.FrameTime == "33.333"
    (tmp_path / "clip.264").write_bytes(stream)
    info = probe(tmp_path / "clip.264")
    assert info == dict(info, profile="High", level="41", width="1280", height="720", nb_read_frames="60",
                        pix_fmt="yuv420p", color_range="tv"), info
    decoded = raw([tool("ffmpeg"), "-v", "error", "-i", str(tmp_path / "clip.264"), "-f", "rawvideo", "-pix_fmt",
                   "rgb24", "-"])
    values = psnr_each(decoded, Pattern("rgb8", 1280, 720), 1280, 720)
    assert len(values) == 60 and min(values) > MIN_PSNR_DB, values
    assert encoder.frame_count == 60


def test_storescp_prefers_and_stores_it(tmp_path, storescp):
    path = tmp_path / "h264.dcm"
    h264_object(path, 640, 480, 10)
    scp = storescp("+xn")
    from tests.conftest import modgate
    result = modgate("store", "127.0.0.1", str(scp.port), str(path))
    assert result.returncode == 0 and " 0000 success" in result.stdout, result.stdout + result.stderr
    [stored] = scp.files()
    assert pydicom.dcmread(stored).file_meta.TransferSyntaxUID == MPEG4_AVC_HP41
    assert open(stored, "rb").read().endswith(path.read_bytes()[-4096:])


def test_bd_and_level_42_syntaxes(tmp_path):
    path = tmp_path / "bd.dcm"
    h264_object(path, 1280, 720, 12, MPEG4_AVC_HP41_BD, rate=(50, 1))
    errors, _ = dciodvfy(str(path))
    assert errors == []
    _, stream = bitstream(path)
    (tmp_path / "bd.264").write_bytes(stream)
    assert probe(tmp_path / "bd.264")["nb_read_frames"] == "12"
    path = tmp_path / "hp42.dcm"
    h264_object(path, 1280, 720, 6, MPEG4_AVC_HP42_2D, rate=(60, 1))
    _, stream = bitstream(path)
    (tmp_path / "hp42.264").write_bytes(stream)
    assert probe(tmp_path / "hp42.264")["level"] in ("41", "42")


def test_constraints_are_refused_by_name():
    with pytest.raises(ValueError, match="up to 1920x1080"):
        check_video(MPEG4_AVC_HP41, 2560, 1440, (30, 1))
    with pytest.raises(ValueError, match="macroblocks a second"):
        check_video(MPEG4_AVC_HP41, 1920, 1080, (60, 1))
    check_video(MPEG4_AVC_HP42_2D, 1920, 1080, (60, 1))
    with pytest.raises(ValueError, match="Blu-ray"):
        check_video(MPEG4_AVC_HP41_BD, 1920, 1080, (30, 1))
    with pytest.raises(ValueError, match="even frame size"):
        check_video(MPEG4_AVC_HP41, 641, 480, (30, 1))
    with pytest.raises(ValueError, match="video IODs, rgb8"):
        ObjectEncoder("vl-endoscopic", 480, 640, "rgb8", NOW, transfer_syntax=MPEG4_AVC_HP41)
    with pytest.raises(CodecError, match="rgb8"):
        open_encoder("h264", 64, 48, "mono8")


def test_jpeg_baseline_stills_and_multiframe(tmp_path):
    for iod, pixel, frames in (("vl-endoscopic", "rgb8", 1), ("mf-true-color-sc", "rgb8", 3),
                               ("mf-grayscale-byte-sc", "mono8", 2)):
        board = SimBoard(320, 240, pixel)
        board.start()
        path = tmp_path / ("%s.dcm" % iod)
        with open(path, "wb") as out:
            capture_object(out, board, frames, iod, NOW, {}, codec=open_encoder("jpeg", 320, 240, pixel),
                           transfer_syntax=JPEG_BASELINE_8BIT)
        errors, _ = dciodvfy(str(path))
        assert errors == [], (iod, errors)
        ds = pydicom.dcmread(path)
        assert ds.PhotometricInterpretation == ("YBR_FULL_422" if pixel == "rgb8" else "MONOCHROME2")
        assert ds.LossyImageCompressionMethod == "ISO_10918_1" and ds.LossyImageCompression == "01"
        fragments = list(generate_fragments(ds.PixelData))[1:]
        assert len(fragments) == frames  # one fragment a frame
        jpeg = tmp_path / "frame.jpg"
        jpeg.write_bytes(fragments[0].rstrip(b"\x00") if fragments[0].endswith(b"\xff\xd9\x00") else fragments[0])
        decoded = raw([tool("ffmpeg"), "-v", "error", "-i", str(jpeg), "-f", "rawvideo", "-pix_fmt",
                       "rgb24" if pixel == "rgb8" else "gray", "-"])
        assert len(decoded) == 320 * 240 * (3 if pixel == "rgb8" else 1)
        array = ds.pixel_array  # pydicom with Pillow
        assert array.shape[-2 if pixel == "mono8" else -3] == 240


def test_a_pacs_without_h264_leaves_the_clip_queued_with_an_alarm(tmp_path, storescp):
    """storescp without +xn takes only uncompressed syntaxes: the H.264 clip
    is not transcoded, not failed, not quarantined: it waits with an alarm
    naming the transfer syntax, while an uncompressed clip recorded after it
    is stored. A PACS that takes H.264 then gets it."""
    import board
    from firmware.console.system import ConsoleSystem
    from firmware.gateway import Gateway
    from tests.test_faults import running, wait_for
    from tests.test_gateway import settings

    plain = storescp()
    cfg = settings(tmp_path, plain.port, **{"clip.transfer_syntax": "h264", "acquisition.width": 320,
                                            "acquisition.height": 240, "clip.frames": 10, "clip.count": 1})
    gateway = Gateway(cfg, board.load("host"))
    with running(gateway):
        assert wait_for(lambda: gateway.alarms.text("transfer syntax"), timeout=30), gateway.log.recent[-10:]
        time.sleep(1.0)  # several rounds of the sender: still no failure counted
        status = "\n".join(ConsoleSystem(gateway).status())
        [waiting] = gateway.spool.pending()
        assert waiting.count(".") == 1  # no .fK: not counted as a failure
        assert gateway.spool.quarantined() == []
    # An uncompressed clip recorded after it goes through: the queue is
    # not stalled behind it.
    explicit = dict(cfg, **{"clip.transfer_syntax": "explicit"})
    second = Gateway(explicit, board.load("host"))
    with running(second):
        assert wait_for(lambda: len(plain.files()) == 1, timeout=30), second.log.recent[-10:]
        assert len(second.spool.pending()) == 1
    assert "MPEG-4 AVC/H.264 High Profile / Level 4.1 (1.2.840.10008.1.2.4.102)" in status, status
    assert "the box does not transcode" in status
    assert pydicom.dcmread(plain.files()[0]).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    h264 = storescp("+xn")
    again = Gateway(dict(explicit, **{"pacs.port": h264.port, "clip.mode": "command"}), board.load("host"))
    with running(again):
        assert wait_for(lambda: again.spool.pending() == [] and len(h264.files()) == 1, timeout=30)
    assert pydicom.dcmread(h264.files()[0]).file_meta.TransferSyntaxUID == MPEG4_AVC_HP41


def test_the_bar_capture_h264_720p_60_frames(tmp_path, storescp):
    """modgate capture --transfer-syntax h264 --iod video-endoscopic --frames
    60 --size 1280x720: dciodvfy 0 errors, ffprobe High with 60 frames,
    storescp +xn stores it."""
    from tests.conftest import modgate

    result = modgate("capture", "--transfer-syntax", "h264", "--iod", "video-endoscopic", "--frames", "60",
                     "--size", "1280x720", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    [path] = result.stdout.split()
    errors, _ = dciodvfy(path)
    assert errors == [], errors
    _, stream = bitstream(path)
    (tmp_path / "clip.264").write_bytes(stream)
    info = probe(tmp_path / "clip.264")
    assert (info["profile"], info["nb_read_frames"], info["width"], info["height"]) == ("High", "60", "1280", "720")
    scp = storescp("+xn")
    stored = modgate("store", "127.0.0.1", str(scp.port), path)
    assert stored.returncode == 0 and len(scp.files()) == 1, stored.stdout
    refused = modgate("capture", "--transfer-syntax", "h264", "--iod", "video-endoscopic", "--frames", "2",
                      "--size", "1920x1080", "--rate", "60", "--out", str(tmp_path / "no"))
    assert refused.returncode == 2 and "macroblocks a second" in refused.stderr


def test_orthanc_stores_h264_and_jpeg_byte_identically(tmp_path):
    from tests.conftest import Orthanc, http, modgate
    from firmware.dicom.part10 import read_file_meta

    h264 = tmp_path / "h264.dcm"
    h264_object(h264, 640, 480, 20)
    board = SimBoard(320, 240, "rgb8")
    board.start()
    jpeg = tmp_path / "jpeg.dcm"
    with open(jpeg, "wb") as out:
        capture_object(out, board, 1, "vl-endoscopic", NOW, {}, codec=open_encoder("jpeg", 320, 240, "rgb8"),
                       transfer_syntax=JPEG_BASELINE_8BIT)
    folder = tmp_path / "orthanc"
    folder.mkdir()
    server = Orthanc(folder)
    try:
        result = modgate("store", "--aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), str(h264), str(jpeg))
        assert result.returncode == 0, result.stdout + result.stderr
        for path, syntax in ((h264, MPEG4_AVC_HP41), (jpeg, JPEG_BASELINE_8BIT)):
            source = path.read_bytes()
            meta = read_file_meta(source[:65536])
            [found] = server.rest("/tools/lookup", meta.sop_instance_uid.encode())
            stored = http(server.http_port, "/instances/%s/file" % found["ID"])
            assert stored[read_file_meta(stored[:65536]).dataset_offset:] == source[meta.dataset_offset:]
            assert server.rest("/instances/%s/metadata?expand" % found["ID"])["TransferSyntax"] == syntax
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(__import__("firmware.dicom.iod", fromlist=["x"]).TRANSFER_SYNTAXES))
def test_every_iod_in_every_syntax_it_takes(tmp_path, name):
    """Each IOD x transfer syntax it takes: dciodvfy 0 errors, dcmdump
    without a warning, pydicom reads the object and its frames."""
    from firmware.dicom.iod import IODS, TRANSFER_SYNTAXES, check_transfer_syntax

    uid, kind = TRANSFER_SYNTAXES[name]
    made = 0
    for iod in sorted(IODS):
        pixel = IODS[iod].pixel_formats[0]
        try:
            check_transfer_syntax(name, iod, pixel)
        except ValueError:
            continue
        width, height, rate = (1280, 720, (50, 1)) if name == "h264-bd" else (320, 240, (30, 1))
        frames = 1 if not IODS[iod].multiframe else 3
        board = SimBoard(width, height, pixel, rate=rate)
        board.start()
        codec = None
        if kind == "h264":
            codec = open_encoder("h264", width, height, pixel, rate, bluray=name == "h264-bd",
                                 level="4.2" if name == "h264-hp42" else "4.1")
        elif kind == "jpeg":
            codec = open_encoder("jpeg", width, height, pixel)
        path = tmp_path / ("%s.dcm" % iod)
        with open(path, "wb") as out:
            capture_object(out, board, frames, iod, NOW, {}, codec=codec, transfer_syntax=uid)
        errors, _ = dciodvfy(str(path))
        assert errors == [], (iod, errors)
        dcmdump(str(path))  # fails on any warning
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == uid and int(ds.get("NumberOfFrames", 1)) == frames
        if kind is not None:
            fragments = list(generate_fragments(ds.PixelData))
            assert len(fragments) == (2 if kind == "h264" else frames + 1), iod
        else:
            assert len(ds.PixelData) >= frames * width * height
        made += 1
    assert made


def test_kill_9_during_h264_recordings_loses_and_queues_nothing_half_written(tmp_path, storescp):
    """modgate run recording H.264 clips, SIGKILLed at random moments while
    the PACS is down; then drained into storescp +xn. Every clip it said it
    queued arrives, and everything that arrives is whole (FFmpeg decodes as
    many frames as the object says)."""
    import json
    import os
    import random
    import re
    import signal
    import sys

    from tests.conftest import ROOT, free_port

    rng = random.Random(1126)
    spool = tmp_path / "spool"
    log_path = tmp_path / "run.log"
    queued = re.compile(r"queued as (\S+), SOP Instance UID (\S+)")

    def start(port, record):
        cfg = {"board": "host",
               "acquisition": {"width": 160, "height": 120, "pixel": "rgb8", "rate": [60, 1], "paced": True},
               "clip": {"mode": "frames" if record else "command", "frames": 6, "transfer_syntax": "h264"},
               "pacs": {"port": port, "idle_release": 0.2, "connect_timeout": 1},
               "spool": {"root": str(spool), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024,
                         "backoff_initial": 0.05, "backoff_max": 0.3}}
        path = tmp_path / ("record.json" if record else "drain.json")
        path.write_text(json.dumps(cfg))
        with open(log_path, "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "firmware.main", "--config", str(path)], cwd=ROOT,
                                    stdout=log, stderr=log)

    down = free_port()
    for _ in range(6):
        proc = start(down, True)
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    said = dict((uid, name) for name, uid in queued.findall(log_path.read_text()))
    assert len(said) >= 3, log_path.read_text()[-2000:]
    scp = storescp("+xn")
    proc = start(scp.port, False)
    try:
        deadline = time.monotonic() + 60
        while os.listdir(spool / "queue") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    arrived = {}
    for path in scp.files():
        arrived[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID] = path
    # Every clip the log said it queued arrives. A kill between the commit
    # (the rename into queue/) and the log line leaves a committed clip the
    # log never named: it arrives too, at most one per kill, and must be as
    # whole as the others.
    assert set(said) <= set(arrived), sorted(set(said) - set(arrived))
    assert len(set(arrived) - set(said)) <= 6, sorted(set(arrived) - set(said))
    for uid, path in arrived.items():
        ds, stream = bitstream(path)
        (tmp_path / "c.264").write_bytes(stream)
        assert probe(tmp_path / "c.264")["nb_read_frames"] == str(int(ds.NumberOfFrames)), uid


def test_a_ycbcr422_acquisition_records_h264(tmp_path):
    # What an HDMI bridge gives (UYVY, hal.acq ycbcr422) is recorded as
    # H.264 without passing through RGB: libyuv halves the chroma rows, Y
    # goes in as it came.
    width, height, frames = 320, 240, 30
    board = SimBoard(width, height, "ycbcr422", rate=(30, 1))
    board.start()
    codec = open_encoder("h264", width, height, "ycbcr422", (30, 1))
    path = tmp_path / "uyvy.dcm"
    with open(path, "wb") as out:
        encoder = capture_object(out, board, frames, "video-endoscopic", NOW, {}, codec=codec,
                                 transfer_syntax=MPEG4_AVC_HP41)
    assert encoder.frame_count == frames
    errors, _ = dciodvfy(str(path))
    assert errors == [], errors
    ds, stream = bitstream(path)
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420" and int(ds.NumberOfFrames) == frames
    (tmp_path / "clip.264").write_bytes(stream)
    info = probe(tmp_path / "clip.264")
    assert info == dict(info, profile="High", width=str(width), height=str(height), nb_read_frames=str(frames)), info
    decoded = raw([tool("ffmpeg"), "-v", "error", "-i", str(tmp_path / "clip.264"), "-f", "rawvideo", "-pix_fmt",
                   "uyvy422", "-"])
    pattern = Pattern("ycbcr422", width, height)
    size = width * height * 2
    assert len(decoded) == frames * size
    for k in range(frames):
        got, want = decoded[k * size:(k + 1) * size], pattern.frame(k)
        # Y alone (every second byte of UYVY): the codec's loss, no colour
        # conversion in between.
        error = sum((a - b) ** 2 for a, b in zip(got[1::2][::31], want[1::2][::31])) / len(got[1::2][::31])
        assert error == 0 or 10 * math.log10(255 ** 2 / error) > MIN_PSNR_DB, (k, error)


def test_ycbcr422_is_stored_as_h264_only():
    from firmware.dicom.iod import check_transfer_syntax

    check_transfer_syntax("h264", "video-endoscopic", "ycbcr422")
    for name in ("explicit", "implicit", "jpeg-baseline"):
        with pytest.raises(ValueError, match="ycbcr422 frames are stored as H.264 only"):
            check_transfer_syntax(name, "video-endoscopic", "ycbcr422")
    with pytest.raises(ValueError, match="H.264 only"):
        ObjectEncoder("video-endoscopic", 240, 320, "ycbcr422", NOW, {})
