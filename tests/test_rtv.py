"""PS3.22 real-time video: the RTP header, the ST 2110-20 packetizer and its
SDP, checked by a small depacketizer here and by FFmpeg's RFC 4175 one."""

import io
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from firmware.rtv.rtp import frame_timestamp, rtp_header
from firmware.rtv.sdp import metadata_sdp, reference_clock, video_sdp
from firmware.rtv.st2110_20 import MAX_DATAGRAM, Packetizer, equal_segment, pack_10bit, unpack_10bit
from hal.acq.sim import Pattern
from tests.conftest import ROOT, tool

SAMPLING = {"ycbcr422": "YCbCr-4:2:2", "rgb8": "RGB"}
# What the box gives a metadata flow of itself (firmware/study.py
# equipment_attributes): its model and serial number.
EQUIPMENT = {0x00081090: "test-board", 0x00181000: "SN-0001"}
PGROUP = {"ycbcr422": (4, 2), "rgb8": (3, 1)}
FFMPEG_PIX = {"ycbcr422": "uyvy422", "rgb8": "rgb24"}


def parse(datagram):
    """(rtp fields, ext seq, [(length, field, line, offset, cont)], data)."""
    b0, b1, seq, ts, ssrc, ext = struct.unpack(">BBHIIH", datagram[:14])
    srds, pos = [], 14
    while True:
        length, fline, coff = struct.unpack(">HHH", datagram[pos:pos + 6])
        pos += 6
        srds.append((length, fline >> 15, fline & 0x7FFF, coff & 0x7FFF, coff >> 15))
        if not coff >> 15:
            break
    rtp = {"version": b0 >> 6, "p": (b0 >> 5) & 1, "x": (b0 >> 4) & 1, "cc": b0 & 15,
           "marker": b1 >> 7, "pt": b1 & 127, "seq": seq, "ts": ts, "ssrc": ssrc}
    return rtp, ext, srds, datagram[pos:]


def depacketize(datagrams, width, height, pixel):
    """Rebuilds one frame from the SRD headers alone, checking the rules."""
    pg, xinc = PGROUP[pixel]
    row = width * pg // xinc
    frame = bytearray(row * height)
    written = 0
    for d in datagrams:
        _, _, srds, data = parse(d)
        assert sum(s[0] for s in srds) == len(data)
        for length, field, line, offset, _ in srds:
            assert field == 0 and line < height
            assert length % pg == 0 and offset % xinc == 0  # pgroups never split
            at = line * row + offset * pg // xinc
            assert offset * pg // xinc + length <= row
            frame[at:at + length] = data[:length]
            data = data[length:]
            written += length
    assert written == len(frame)
    return bytes(frame)


def test_rtp_header_fields():
    h = rtp_header(96, 0x1234, 0x89ABCDEF, 0xCAFEBABE, marker=True)
    assert len(h) == 12
    b0, b1, seq, ts, ssrc = struct.unpack(">BBHII", h)
    assert b0 == 0x80  # V=2, P=0, X=0, CC=0
    assert (b1 >> 7, b1 & 127, seq, ts, ssrc) == (1, 96, 0x1234, 0x89ABCDEF, 0xCAFEBABE)
    b0, b1, seq, ts, ssrc = struct.unpack(">BBHII", rtp_header(127, 0x12345, 2**32 + 5, 7))
    assert (b1, seq, ts, ssrc) == (127, 0x2345, 5, 7)
    with pytest.raises(ValueError):
        rtp_header(128, 0, 0, 0)


def test_timestamps():
    assert [frame_timestamp(k, (30, 1)) for k in range(3)] == [0, 3000, 6000]
    assert [frame_timestamp(k, (30000, 1001)) for k in (0, 1, 2, 3)] == [0, 3003, 6006, 9009]
    assert frame_timestamp(30000, (30000, 1001)) == 90090000 % 2**32
    assert frame_timestamp(1, (25, 1), offset=2**32 - 1000) == 2600
    assert frame_timestamp(10**7, (60, 1)) == (10**7 * 1500) % 2**32


@pytest.mark.parametrize("pixel, width, height", [
    ("ycbcr422", 34, 6), ("rgb8", 34, 6), ("rgb8", 1, 1), ("ycbcr422", 2, 3),
    ("ycbcr422", 1920, 1080), ("rgb8", 1920, 1080), ("rgb8", 481, 5),
])
def test_packetizer_round_trip(pixel, width, height):
    pattern = Pattern(pixel, width, height)
    pk = Packetizer(width, height, SAMPLING[pixel], 8, payload_type=97, ssrc=0x1234567,
                    sequence=0xFFFF)
    expected_seq = 0xFFFF
    for k in (0, 1):
        frame = pattern.frame(k)
        ts = frame_timestamp(k, (30000, 1001), offset=2**32 - 1)
        datagrams = list(pk.packets(frame, ts))
        for i, d in enumerate(datagrams):
            assert isinstance(d, bytes) and len(d) <= MAX_DATAGRAM
            rtp, ext, srds, data = parse(d)
            assert (rtp["version"], rtp["p"], rtp["x"], rtp["cc"]) == (2, 0, 0, 0)
            assert (rtp["pt"], rtp["ssrc"], rtp["ts"]) == (97, 0x1234567, ts)
            assert rtp["marker"] == (i == len(datagrams) - 1)
            assert (ext << 16 | rtp["seq"]) == expected_seq  # RFC 4175 4.3
            expected_seq = (expected_seq + 1) & 0xFFFFFFFF
        assert depacketize(datagrams, width, height, pixel) == frame
    assert expected_seq > 0xFFFF  # the 16-bit wrap was crossed
    assert pk.sequence == expected_seq


def test_equal_size_packing():
    # 1920 4:2:2 pixels = 3840 bytes a line = 3 segments of 1280: every
    # datagram 14 + 6 + 1280 bytes, one SRD, no line shared.
    pk = Packetizer(1920, 4, "YCbCr-4:2:2")
    assert pk.segment == 1280 and pk.datagram_count() == 12
    datagrams = list(pk.packets(Pattern("ycbcr422", 1920, 4).frame(0), 0))
    assert [len(d) for d in datagrams] == [1300] * 12
    assert [parse(d)[2] for d in datagrams[:4]] == [
        [(1280, 0, 0, 0, 0)], [(1280, 0, 0, 640, 0)], [(1280, 0, 0, 1280, 0)], [(1280, 0, 1, 0, 0)]]
    # RGB 1920: 4 segments of 1440, full datagrams
    assert Packetizer(1920, 1080, "RGB").segment == 1440
    assert equal_segment(1920, 1440, 3) is None  # 960 would waste a third


def test_filled_packing():
    # 640 RGB pixels = 1920 bytes a line: no equal split fills 3/4 of a
    # datagram, so datagrams are filled and lines continue under a 2nd SRD.
    pk = Packetizer(640, 4, "RGB")
    assert pk.segment is None
    datagrams = list(pk.packets(Pattern("rgb8", 640, 4).frame(0), 0))
    assert len(datagrams) == pk.datagram_count() == 6
    assert len(datagrams[0]) == MAX_DATAGRAM
    _, _, srds, _ = parse(datagrams[1])
    assert [(s[0], s[2], s[3], s[4]) for s in srds] == [(480, 0, 480, 1), (954, 1, 0, 0)]
    # small lines: many SRDs in one datagram
    pk = Packetizer(34, 6, "RGB")
    datagrams = list(pk.packets(Pattern("rgb8", 34, 6).frame(0), 0))
    assert len(datagrams) == 1 and len(parse(datagrams[0])[2]) == 6


def test_10bit_pgroups():
    # ST 2110-20: Cb Y0 Cr Y1, 10 bits each, MSB first, 5 bytes a pgroup.
    words = struct.pack("<4H", 0x3FF, 0x001, 0x200, 0x155)
    assert pack_10bit(words) == (0x3FF << 30 | 0x001 << 20 | 0x200 << 10 | 0x155).to_bytes(5, "big")
    frame = Pattern("ycbcr422-10", 64, 3).frame(7)
    assert unpack_10bit(pack_10bit(frame)) == frame
    pk = Packetizer(64, 3, "YCbCr-4:2:2", 10)
    assert pk.input_size == len(frame) and pk.frame_size == 64 * 3 * 5 // 2
    datagrams = list(pk.packets(frame, 0))
    rebuilt = bytearray()
    for d in datagrams:
        rebuilt += parse(d)[3]
    assert unpack_10bit(bytes(rebuilt)) == frame


@pytest.mark.parametrize("slice_pgroups", [3, 16384])
def test_10bit_column_packer_equals_the_loop(monkeypatch, slice_pgroups):
    # CPython packs byte columns, a slice of pgroups at a time; MicroPython
    # runs the loop (no bytes.translate, no stepped slices). Same bytes, for
    # any bits above the 10th, a partial pgroup at the end, a partial
    # slice, bytes, bytearray or memoryview in.
    import random

    from firmware.rtv import st2110_20

    assert st2110_20._COLUMN_TABLES  # this is CPython: the column packer runs
    monkeypatch.setattr(st2110_20, "_COLUMN_PGROUPS", slice_pgroups)
    rng = random.Random(1127)
    for size in list(range(0, 41)) + [1920 * 2 * 2, 1920 * 2 * 2 * 3 + 5, 16384 * 8 * 2 + 13]:
        words = bytes(rng.getrandbits(8) for _ in range(size))
        want = st2110_20._pack_10bit_loop(words)
        assert len(want) == size // 8 * 5
        for given in (words, bytearray(words), memoryview(words)):
            assert st2110_20._pack_10bit_columns(given) == want, size
    frame = Pattern("ycbcr422-10", 1920, 4).frame(3)
    assert pack_10bit(frame) == st2110_20._pack_10bit_loop(frame)


def test_packetizer_refuses():
    with pytest.raises(ValueError, match="at 8 or 10"):
        Packetizer(64, 48, "RGB", 10)
    with pytest.raises(ValueError):
        Packetizer(33, 4, "YCbCr-4:2:2")
    with pytest.raises(ValueError):
        Packetizer(64, 48, "YCbCr-4:4:4")
    with pytest.raises(ValueError):
        list(Packetizer(4, 4, "RGB").packets(b"\0" * 47, 0))


def test_sdp():
    text = video_sdp("127.0.0.1", 5004, 320, 240, (30000, 1001), "YCbCr-4:2:2", 8)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert [l[:2] for l in lines[:6]] == ["v=", "o=", "s=", "c=", "t=", "m="]
    assert "c=IN IP4 127.0.0.1" in lines and "m=video 5004 RTP/AVP 96" in lines
    assert "a=rtpmap:96 raw/90000" in lines
    assert ("a=fmtp:96 sampling=YCbCr-4:2:2; width=320; height=240; exactframerate=30000/1001; "
            "depth=8; TCS=SDR; colorimetry=BT601; RANGE=NARROW; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPW; "
            # ST 2110-21 6.3.2 TRO_DEFAULT = 28/750 x 1001/30000 s = 1245.689 us,
            # plus modgate's 4 ms for late wake-ups (108 packets a frame: the
            # 720-packet buffer holds them), signalled in whole us (8.2)
            "TROFF=5245") in lines
    # TR_OFFSET = TRO_DEFAULT is not signalled (6.2)
    assert "TROFF" not in video_sdp("127.0.0.1", 5004, 1920, 1080, (30, 1), "YCbCr-4:2:2", 8,
                                    troffset_ns=43 * 1000000000 // (1125 * 30))
    # RFC 7273 4.8: without a PTP clock, the truth: a local clock.
    assert lines[-2:] == ["a=mediaclk:direct=0", "a=ts-refclk:localmac=00-00-00-00-00-00"]
    text = video_sdp("239.1.2.3", 5004, 64, 48, (30, 1), "RGB", 8, payload_type=112, ttl=8,
                     refclk=reference_clock(False, "52:54:00:12:34:56"))
    assert "c=IN IP4 239.1.2.3/8\r\n" in text and "exactframerate=30;" in text
    assert "RANGE=FULL;" in text and text.endswith("a=ts-refclk:localmac=52-54-00-12-34-56\r\n")
    assert metadata_sdp("239.1.2.3", 5006, refclk=reference_clock(True)).endswith(
        "a=ts-refclk:ptp=IEEE1588-2008:traceable\r\n")
    assert "a=rtpmap:112 raw/90000" in text
    assert "c=IN IP4 239.1.2.3/1\r\n" in video_sdp("239.1.2.3", 5004, 64, 48, (30, 1), "RGB", 8)


def _free_rtp_port():
    """An even UDP port whose odd neighbour (RTCP, RFC 3550 11) is free too."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1] & ~1
        try:
            pair = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
            try:
                pair[0].bind(("127.0.0.1", port))
                pair[1].bind(("127.0.0.1", port + 1))
                return port
            finally:
                for s in pair:
                    s.close()
        except OSError:
            continue
    pytest.fail("no free UDP port pair")


@pytest.mark.parametrize("pixel", ["ycbcr422", "rgb8"])
def test_ffmpeg_receives_frames(tmp_path, pixel):
    width, height, rate, wanted = 320, 240, (30, 1), 24
    port = _free_rtp_port()
    sdp = tmp_path / "video.sdp"
    sdp.write_text(video_sdp("127.0.0.1", port, width, height, rate, SAMPLING[pixel], 8), newline="")
    out = tmp_path / "out.raw"
    proc = subprocess.Popen(
        [tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error",
         "-protocol_whitelist", "file,udp,rtp", "-i", str(sdp), "-frames:v", str(wanted),
         "-f", "rawvideo", "-pix_fmt", FFMPEG_PIX[pixel], str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pattern = Pattern(pixel, width, height)
    pk = Packetizer(width, height, SAMPLING[pixel], 8, ssrc=0x5EED, sequence=0xFFFF - 40)
    sent = {}
    try:
        time.sleep(1.0)  # let it bind
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            period = rate[1] / rate[0]
            t0 = time.monotonic()
            k = 0
            while proc.poll() is None and k < wanted + 90:
                frame = sent[k] = pattern.frame(k)
                datagrams = list(pk.packets(frame, frame_timestamp(k, rate)))
                # spread a frame over half its period: a loopback burst of a
                # whole frame can overflow the receive buffer
                for i in range(0, len(datagrams), 8):
                    for d in datagrams[i:i + 8]:
                        sock.sendto(d, ("127.0.0.1", port))
                    time.sleep(period / 2 * 8 / len(datagrams))
                k += 1
                delay = t0 + k * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")
    raw = out.read_bytes()
    size = pk.frame_size
    assert len(raw) == wanted * size, (len(raw), size)
    got = [raw[i * size:(i + 1) * size] for i in range(wanted)]
    first = [k for k, f in sent.items() if f == got[0]]
    assert first, "FFmpeg's first frame is none of the frames sent"
    k0 = first[0]
    for i, f in enumerate(got):
        assert f == sent[k0 + i], "output frame %d is not sent frame %d" % (i, k0 + i)


def test_receiver_counts_what_is_lost():
    """tools/rtv_receiver.py, which the streaming tests trust to say
    "nothing lost": a datagram dropped from a frame makes that frame
    incomplete and counts as lost, across the 32-bit extended sequence
    number's wrap; a repeated datagram is not a loss, but the receiver
    is strict and does not vouch for its frame either; the same for the
    metadata flow's 16-bit numbers."""
    from firmware.rtv.metadata import MetadataFlow
    from tools.rtv_receiver import MetadataFlowReceiver, VideoFlow

    width, height, rate = 64, 32, (30, 1)
    pattern = Pattern("rgb8", width, height)
    pk = Packetizer(width, height, "RGB", sequence=0xFFFFFFFF - 3)
    flow = VideoFlow(width, height, "RGB", 8, rate)
    frames = [list(pk.packets(pattern.frame(k), frame_timestamp(k, rate))) for k in range(3)]
    assert len(frames[0]) > 2
    for d in frames[0] + frames[1][:1] + frames[1][2:] + frames[2][:1] + frames[2][:1] + frames[2][1:]:
        flow.feed(d, 0)
    assert (flow.frames, flow.incomplete, flow.lost) == (1, 2, 1)

    meta = MetadataFlow("video-endoscopic", width, height, "rgb8", rate, b"s" * 16, b"v" * 16, b"m" * 16,
                        EQUIPMENT, sequence=0xFFFF - 1)
    receiver = MetadataFlowReceiver()
    payloads = [list(meta.packets(k, frame_timestamp(k, rate), k * 33333333)) for k in range(3)]
    for d in payloads[0] + payloads[2]:  # frame 1's payload is lost whole
        receiver.feed(d)
    assert (receiver.frames, receiver.lost) == (2, len(payloads[1]))


def test_receiver_joining_mid_frame_reports_joined():
    """A receiver started while a stream runs gets the frame under way from
    its middle: that first frame is "joined", not incomplete, and the
    report stays ok. A frame cut short later still counts as incomplete,
    and one joined exactly at a frame's start is simply complete."""
    from tools.rtv_receiver import VideoFlow

    width, height, rate = 64, 32, (30, 1)
    pattern = Pattern("rgb8", width, height)
    pk = Packetizer(width, height, "RGB")
    frames = [list(pk.packets(pattern.frame(k), frame_timestamp(k, rate))) for k in range(4)]
    half = len(frames[0]) // 2
    flow = VideoFlow(width, height, "RGB", 8, rate)
    for d in frames[0][half:] + frames[1] + frames[2]:
        flow.feed(d, 0)
    assert (flow.joined, flow.frames, flow.incomplete, flow.lost) == (1, 2, 0, 0)
    for d in frames[3][:1] + frames[3][2:]:  # a datagram lost from a later frame
        flow.feed(d, 0)
    assert (flow.joined, flow.frames, flow.incomplete, flow.lost) == (1, 2, 1, 1)
    assert flow.timestamp_errors == 0

    on_time = VideoFlow(width, height, "RGB", 8, rate)
    for d in frames[1] + frames[2]:
        on_time.feed(d, 0)
    assert (on_time.joined, on_time.frames, on_time.incomplete) == (0, 2, 0)

    # a loss inside the first frame is a loss, not a join
    lossy = VideoFlow(width, height, "RGB", 8, rate)
    for d in frames[0][half:half + 1] + frames[0][half + 2:] + frames[1]:
        lossy.feed(d, 0)
    assert (lossy.joined, lossy.frames, lossy.incomplete, lossy.lost) == (0, 1, 1, 1)


def _receiver_command(sdp_dir, send, *args):
    """python -m tools.rtv_receiver --sdp-dir sdp_dir --unshared-clock
    *args, while send(sock) sends this test's datagrams over loopback once
    it has had time to bind; (exit status, stdout + stderr's text, stdout).
    The datagrams are on no epoch: --unshared-clock leaves their timing
    against it unjudged."""
    proc = subprocess.Popen([sys.executable, "-m", "tools.rtv_receiver", "--sdp-dir", str(sdp_dir),
                             "--unshared-clock"] + list(args),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # let it bind
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            send(sock)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out + err, out


def test_receiver_command_after_a_late_join(tmp_path):
    """python -m tools.rtv_receiver, given the SDP and datagrams over
    loopback that begin in the middle of a frame: it prints "joined 1" and
    "ok", exit 0."""
    width, height, rate = 64, 32, (30, 1)
    port = _free_rtp_port()
    (tmp_path / "video.sdp").write_text(video_sdp("127.0.0.1", port, width, height, rate, "RGB", 8), newline="")
    pattern = Pattern("rgb8", width, height)
    pk = Packetizer(width, height, "RGB")
    frames = [list(pk.packets(pattern.frame(k), frame_timestamp(k, rate))) for k in range(5)]

    def send(sock):
        for k, datagrams in enumerate(frames):
            for d in datagrams[len(datagrams) // 2:] if k == 0 else datagrams:
                sock.sendto(d, ("127.0.0.1", port))
            time.sleep(rate[1] / rate[0])

    status, said, out = _receiver_command(tmp_path, send, "--frames", "3", "--seconds", "20")
    assert status == 0, said
    assert "joined 1" in out and "incomplete 0" in out and out.strip().endswith("ok"), out


def test_receiver_command_leaving_mid_frame_is_ok(tmp_path):
    """python -m tools.rtv_receiver that stops listening in the middle of a
    frame: that frame's metadata (sent before its video) has come and its
    video has not all come. It is "in flight", not an unmatched timestamp:
    the command prints ok (a technician's 20 s check printed FAILED)."""
    from firmware.rtv.metadata import MetadataFlow

    width, height, rate = 64, 32, (30, 1)
    port = _free_rtp_port()
    (tmp_path / "video.sdp").write_text(video_sdp("127.0.0.1", port, width, height, rate, "RGB", 8), newline="")
    (tmp_path / "metadata.sdp").write_text(metadata_sdp("127.0.0.1", port + 2), newline="")
    pattern = Pattern("rgb8", width, height)
    pk = Packetizer(width, height, "RGB")
    meta = MetadataFlow("video-endoscopic", width, height, "rgb8", rate, b"s" * 16, b"v" * 16, b"m" * 16,
                        EQUIPMENT)

    def send(sock):
        for k in range(4):
            ts = frame_timestamp(k, rate)
            for d in meta.packets(k, ts, k * 33333333):
                sock.sendto(d, ("127.0.0.1", port + 2))
            datagrams = list(pk.packets(pattern.frame(k), ts))
            for d in datagrams[:len(datagrams) // 2] if k == 3 else datagrams:
                sock.sendto(d, ("127.0.0.1", port))
            time.sleep(rate[1] / rate[0])

    status, said, out = _receiver_command(tmp_path, send, "--seconds", "4")
    assert status == 0, said
    assert "frames 3" in out and "in_flight 1" in out and "unmatched_timestamps 0" in out, out
    assert out.strip().endswith("ok"), out


def test_the_boards_say_their_reference_clock():
    """The box names its clock truthfully in its SDPs: a PTP hardware clock
    (imx8mp_gateway's /dev/ptp0) as IEEE 1588-2008 traceable; the host's
    loopback and the emulated box's virtio-net have none: their local clock,
    by the NIC's MAC (RFC 7273 4.8)."""
    import board

    assert reference_clock(*board.load("imx8mp_gateway").reference_clock()) == "ptp=IEEE1588-2008:traceable"
    # lo's address
    assert reference_clock(*board.load("host").reference_clock()) == "localmac=00-00-00-00-00-00"


def _extension_of(datagram):
    """(X bit, {id: bytes}) of an RTP packet, read here independently of
    firmware/rtv/rtp.py: RFC 3550 5.3.1 and the RFC 8285 4.2 one-byte form."""
    x = bool(datagram[0] & 0x10)
    if not x:
        return False, {}
    pos = 12 + 4 * (datagram[0] & 15)
    profile, words = struct.unpack_from(">HH", datagram, pos)
    assert profile == 0xBEDE
    body, out, i = datagram[pos + 4:pos + 4 + 4 * words], {}, 0
    while i < len(body):
        if body[i] == 0:
            i += 1
            continue
        ident, length = body[i] >> 4, (body[i] & 15) + 1
        out[ident] = body[i + 1:i + 1 + length]
        i += 1 + length
    return True, out


def test_every_metadata_packet_has_the_extension_and_grain_flags():
    """PS3.22: X = 1 on every metadata packet. NMOS: identity and timing on
    the grain's first and last packets, S on the first, E on the last (S|E,
    0xC0, on a grain of one packet)."""
    from firmware.rtv import nmos
    from firmware.rtv.metadata import MetadataFlow

    for max_datagram, packets_wanted in ((8000, 1), (400, None)):
        meta = MetadataFlow("video-endoscopic", 320, 240, "rgb8", (30, 1), b"s" * 16, b"v" * 16, b"m" * 16,
                            EQUIPMENT, max_datagram=max_datagram, meta_source_id=b"n" * 16)
        packets = meta.packets(0, 0, 1795000000 * 10 ** 9)
        if packets_wanted:
            assert len(packets) == packets_wanted
        else:
            assert len(packets) >= 3
        parsed = [_extension_of(p) for p in packets]
        assert all(x for x, _ in parsed)
        flags = [ext[nmos.GRAIN_FLAGS][0] for _, ext in parsed]
        if len(packets) == 1:
            assert flags == [0xC0]
        else:
            assert flags == [0x80] + [0x00] * (len(packets) - 2) + [0x40]
        for position in {0, len(packets) - 1}:
            ext = parsed[position][1]
            assert ext[nmos.SOURCE_ID] == b"n" * 16 and ext[nmos.FLOW_ID] == b"m" * 16
            assert nmos.ORIGIN_TIMESTAMP in ext and nmos.GRAIN_DURATION in ext


def test_the_receiver_takes_the_extension_ids_from_the_sdp():
    """A sender whose SDP maps the NMOS elements to other IDs: the receiver
    reassembles by the grain flags under those IDs, never by assumed ones."""
    from firmware.rtv import nmos
    from firmware.rtv.metadata import MetadataFlow
    from firmware.rtv.rtp import one_byte_extension
    from tools.rtv_receiver import MetadataFlowReceiver

    shuffled = dict((urn, 14 - ident) for ident, urn in nmos.URNS)
    meta = MetadataFlow("video-endoscopic", 320, 240, "rgb8", (30, 1), b"s" * 16, b"v" * 16, b"m" * 16,
                        EQUIPMENT, max_datagram=400)
    packets = meta.packets(0, 4242, 1795000000 * 10 ** 9)
    remapped = []
    for datagram in packets:
        x, ext = _extension_of(datagram)
        pos = 12 + 4 * (datagram[0] & 15)
        words = struct.unpack_from(">H", datagram, pos + 2)[0]
        new_ext = one_byte_extension([(14 - ident, data) for ident, data in ext.items()])
        remapped.append(datagram[:pos] + new_ext + datagram[pos + 4 + 4 * words:])
    got = []
    receiver = MetadataFlowReceiver(lambda ts, payload, ext: got.append((ts, payload, ext)), shuffled)
    for datagram in remapped:
        receiver.feed(datagram)
    [(ts, payload, ext)] = got
    assert ts == 4242 and payload == meta.payload(0, 1795000000 * 10 ** 9)
    assert ext[nmos.FLOW_ID] == meta.flow_id and receiver.incomplete == 0
    wrong = MetadataFlowReceiver(lambda *a: got.append(a))  # assuming nmos.URNS' IDs
    for datagram in remapped:
        wrong.feed(datagram)
    assert len(got) == 1 or got[1][2].get(nmos.FLOW_ID) != meta.flow_id


# -- the static part (issue 18, item 4) ---------------------------------------

# PS3.3 Tables A.32.9-1 and A.32.10-1: the mandatory modules of the Real-Time
# Video Endoscopic and Photographic Image IODs that the static part carries,
# and the Type 1 and Type 2 attributes of each (their tables in PS3.3),
# written out here from the standard, not taken from the firmware. General
# Acquisition (C.7.10.1) has only Type 3 attributes and Common Instance
# Reference (C.12.2) only 1C ones, checked on their own below.
STATIC_MODULES = {
    "Patient C.7.1.1": ((), ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")),
    "General Study C.7.2.1": (("StudyInstanceUID",),
                              ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")),
    "General Series C.7.3.1": (("Modality", "SeriesInstanceUID"), ("SeriesNumber",)),
    "General Equipment C.7.5.1": ((), ("Manufacturer",)),
    "Enhanced General Equipment C.7.5.2": (("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber",
                                            "SoftwareVersions"), ()),
    "Synchronization C.7.4.2": (("SynchronizationFrameOfReferenceUID", "SynchronizationTrigger",
                                 "AcquisitionTimeSynchronized"), ()),
    "General Image C.7.6.1": ((), ("InstanceNumber",)),
    "Real-Time Bulk Data Flow C.7.6.26": (("RealTimeBulkDataFlowSequence",), ()),
    "Acquisition Context C.7.6.14": ((), ("AcquisitionContextSequence",)),
    "VL Image C.8.12.1": (("ImageType", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                           "BitsStored", "HighBit", "PixelRepresentation"), ("LossyImageCompression",)),
    "ICC Profile C.11.15": (("ICCProfile",), ()),
    "SOP Common C.12.1": (("SOPClassUID", "SOPInstanceUID"), ()),
    "Real-Time Acquisition C.7.6.28": (("SharedFunctionalGroupsSequence", "StereoPairsPresent"), ()),
}
# The stored (non-real-time) SOP class of the same pictures, PS3.4 B.5.
STORED_COUSIN = {"1.2.840.10008.10.1": "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
                 "1.2.840.10008.10.2": "1.2.840.10008.5.1.4.1.1.77.1.4.1"}  # Video Photographic Image Storage


def _rtp_payload(datagram):
    """(marker, RTP timestamp, payload) of one RTP packet, read here from
    RFC 3550 5.1/5.3.1 alone: past the CSRCs and the header extension."""
    marker, timestamp = bool(datagram[1] & 0x80), struct.unpack_from(">I", datagram, 4)[0]
    pos = 12 + 4 * (datagram[0] & 15)
    if datagram[0] & 0x10:
        pos += 4 + 4 * struct.unpack_from(">H", datagram, pos + 2)[0]
    return marker, timestamp, datagram[pos:]


def _captured_payload(tmp_path, iod):
    """The metadata payload of the first frame of a stream started the way
    the box starts one (firmware.streaming.open_stream on the host board),
    captured from a UDP socket and put together from its packets."""
    import board
    from firmware.streaming import open_stream
    from hal.acq.sim import SimBoard
    from hal.storage import PosixStorage

    host = board.load("host")
    sockets = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sockets.append(sock)
    video_dest, meta_dest = [s.getsockname() for s in sockets]
    acq = SimBoard(64, 32, "rgb8", (30, 1))
    acq.start()
    streamer, _ = open_stream(host, acq, host.open_clock(), video_dest, meta_dest, 1, PosixStorage(str(tmp_path)),
                              iod=iod, attributes={0x00100010: "Doe^Jane"})
    try:
        streamer.send(acq.read().data)
        packets = []
        while not packets or not _rtp_payload(packets[-1])[0]:
            packets.append(sockets[1].recv(65536))
    finally:
        streamer.close()
        acq.stop()
        for sock in sockets:
            sock.close()
    assert len({_rtp_payload(p)[1] for p in packets}) == 1  # one frame's payload
    return b"".join(_rtp_payload(p)[2] for p in packets)


def _static_part(payload):
    """The payload as pydicom reads it, and its static part: the data set
    without the dynamic Current Frame Functional Groups (0006,0001)."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(payload), force=True)
    static = pydicom.Dataset()
    for element in ds:
        if element.tag != 0x00060001:
            static.add(element)
    return ds, static


@pytest.mark.parametrize("iod, sop_class", [("video-endoscopic", "1.2.840.10008.10.1"),
                                            ("video-photographic", "1.2.840.10008.10.2")])
def test_static_part_has_the_mandatory_modules(tmp_path, iod, sop_class):
    """pydicom's own parse of a captured metadata payload: its static part
    has each mandatory module of the Real-Time Video Endoscopic /
    Photographic Image IOD with its Type 1 attributes valued and its Type 2
    ones present, with values the standard allows."""
    ds, static = _static_part(_captured_payload(tmp_path, iod))
    assert ds.file_meta[0x00020032].value == sop_class  # RTV Communication SOP Class UID
    missing = ["%s: %s" % (module, keyword) for module, (type1, type2) in STATIC_MODULES.items()
               for keyword in type1 + type2 if keyword not in static]
    empty = ["%s: %s" % (module, keyword) for module, (type1, _) in STATIC_MODULES.items()
             for keyword in type1 if keyword in static and static[keyword].is_empty]
    assert not missing and not empty, (missing, empty)

    assert static.SOPClassUID == sop_class and static.SOPInstanceUID == ds.file_meta[0x00020033].value
    # C.7.5.2: the box itself, as the host board says
    import board

    assert static.Manufacturer == "modgate" and static.ManufacturerModelName == "host"
    assert static.DeviceSerialNumber == board.load("host").device_serial_number()
    assert static.SoftwareVersions
    # C.7.4.2: enumerated values; the host board's clock is no PTP clock, so
    # neither UTC's well-known frame of reference nor "synchronized"
    assert static.SynchronizationTrigger in ("SOURCE", "EXTERNAL", "PASSTHRU", "NO TRIGGER")
    assert static.AcquisitionTimeSynchronized == "N"
    assert static.SynchronizationFrameOfReferenceUID != "1.2.840.10008.15.1.1"
    # C.8.12.1.1.6 Image Type: ORIGINAL or DERIVED, PRIMARY or SECONDARY
    assert static.ImageType[0] in ("ORIGINAL", "DERIVED") and static.ImageType[1] in ("PRIMARY", "SECONDARY")
    assert static.LossyImageCompression in ("00", "01")
    # C.7.6.14: a sequence (Type 2), its items (if any) content items
    assert static["AcquisitionContextSequence"].VR == "SQ"
    # C.7.6.28: exactly one item of shared functional groups; YES or NO
    assert len(static.SharedFunctionalGroupsSequence) == 1 and static.StereoPairsPresent in ("YES", "NO")
    # C.7.6.26: the video flow's source and flow
    assert len(static.RealTimeBulkDataFlowSequence[0].SourceIdentifier) == 16
    # C.7.10.1 General Acquisition: all Type 3; the flow is one acquisition
    assert static.AcquisitionUID
    # C.12.2 Common Instance Reference: its sequences are required only when
    # the instance references others; this one references none
    referencing = [k for k in ("ReferencedImageSequence", "SourceImageSequence", "ReferencedInstanceSequence")
                   if k in static]
    assert not referencing
    assert "ReferencedSeriesSequence" not in static and "StudiesContainingOtherReferencedInstancesSequence" not in static
    # C.11.15.1.1: an Input profile of RGB into the XYZ or Lab PCS, whole
    profile = bytes(static.ICCProfile)
    assert struct.unpack(">I", profile[:4])[0] == len(profile)
    assert profile[12:16] == b"scnr" and profile[16:20] == b"RGB " and profile[20:24] in (b"XYZ ", b"Lab ")
    assert profile[36:40] == b"acsp"
    assert static.PatientName == "Doe^Jane"


def _part10(static, sop_class):
    """The static part as a Part 10 file of sop_class, written by pydicom."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.Dataset()
    ds.update(static)
    ds.SOPClassUID = sop_class
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds, out.getvalue()


@pytest.mark.parametrize("iod", ["video-endoscopic", "video-photographic"])
def test_static_part_passes_dciodvfy(tmp_path, iod, record_property):
    """dicom3tools on the static part of a captured payload, as a Part 10
    file.

    Of the real-time SOP class: the dciodvfy installed here (dicom3tools
    1.00, 2022-06-18; its templates as of the 2024-12 snapshot too) has the
    Real-Time Bulk Data Flow and Real-Time Acquisition modules but no IOD
    for 1.2.840.10008.10.1 or .10.2, so its one error is "Information
    Object Not found", recorded as the test's property "dciodvfy"; its
    checks of every element's VR, VM and value still run and find nothing.
    Should dicom3tools learn the IOD, this demands no error at all.

    So that dciodvfy checks modules too: the same static part as the
    stored SOP class of the same pictures (Video Endoscopic / Photographic
    Image Storage), given the frame modules only the stored IOD has (Cine,
    Multi-frame, one frame of Pixel Data). No error; the only warnings are
    for the attributes of the modules only the real-time IOD has
    (Synchronization, Real-Time Bulk Data Flow, Real-Time Acquisition's
    Shared Functional Groups), which the stored IOD does not list."""
    from pydicom.datadict import keyword_for_tag
    from pydicom.dataelem import DataElement

    from tests.conftest import dciodvfy

    ds, static = _static_part(_captured_payload(tmp_path, iod))
    sop_class = ds.file_meta[0x00020032].value
    _, data = _part10(static, sop_class)
    path = tmp_path / "static.dcm"
    path.write_bytes(data)
    errors, warnings = dciodvfy(str(path))
    if errors == ["Error - Information Object Not found"]:
        record_property("dciodvfy", "knows no IOD for %s; its element checks found no error" % sop_class)
    else:
        assert errors == [], errors
        record_property("dciodvfy", "0 errors for %s" % sop_class)
    assert warnings == [], warnings

    cousin, _ = _part10(static, STORED_COUSIN[sop_class])
    cousin.NumberOfFrames = 1  # PS3.3 C.7.6.6 Multi-frame
    cousin.FrameIncrementPointer = 0x00181063  # C.7.6.5 Cine: Frame Time
    cousin.FrameTime = "33.333"
    cousin.add(DataElement(0x7FE00010, "OB", bytes(cousin.Rows * cousin.Columns * 3)))  # C.7.6.3
    path = tmp_path / "stored.dcm"
    cousin.save_as(str(path), enforce_file_format=True)
    errors, warnings = dciodvfy(str(path))
    assert errors == [], errors
    real_time_only = {"SynchronizationTrigger", "AcquisitionTimeSynchronized", "TimeDistributionProtocol",
                      "SynchronizationFrameOfReferenceUID", "RealTimeBulkDataFlowSequence", "SourceIdentifier",
                      "FlowIdentifierSequence", "FlowIdentifier", "FlowTransferSyntaxUID", "FlowRTPSamplingRate",
                      "SharedFunctionalGroupsSequence"}
    flagged = set()
    for line in warnings:
        if line.startswith("Warning - Dicom dataset contains attributes not present in standard DICOM IOD"):
            continue
        assert line.startswith("Warning - Attribute is not present in standard DICOM IOD"), line
        tag = line.split(" - ")[2].split()[0]  # (0x0018,0x106a)
        group, element = tag.strip("()").split(",")
        flagged.add(keyword_for_tag(int(group, 16) << 16 | int(element, 16)))
    assert flagged <= real_time_only, flagged - real_time_only


def test_static_part_of_a_ptp_synchronized_box():
    """With a PTP-traceable clock (a board with a PTP hardware clock) the
    Synchronization Module names UTC's well-known frame of reference (PS3.3
    C.7.4.2.1.1), says the acquisition time is synchronized and by PTP."""
    from firmware.rtv.metadata import MetadataFlow

    meta = MetadataFlow("video-photographic", 64, 32, "ycbcr422", (30, 1), b"s" * 16, b"v" * 16, b"m" * 16,
                        EQUIPMENT, acquisition_time_synchronized=True)
    _, static = _static_part(meta.payload(0, 1795000000 * 10 ** 9))
    assert static.SynchronizationFrameOfReferenceUID == "1.2.840.10008.15.1.1"
    assert (static.AcquisitionTimeSynchronized, static.TimeDistributionProtocol) == ("Y", "PTP")
    assert static.Modality == "XC" and static.PhotometricInterpretation == "YBR_FULL_422"


def test_static_part_refuses_to_go_without_the_equipment():
    """Manufacturer's Model Name and Device Serial Number are Type 1 (PS3.3
    C.7.5.2) and only the box knows them: a flow without them is refused,
    naming them."""
    from firmware.rtv.metadata import MetadataFlow

    with pytest.raises(ValueError, match=r"\(0008,1090\), \(0018,1000\)"):
        MetadataFlow("video-endoscopic", 64, 32, "rgb8", (30, 1), b"s" * 16, b"v" * 16, b"m" * 16, {})
    with pytest.raises(ValueError, match=r"\(0018,1000\)"):
        MetadataFlow("video-endoscopic", 64, 32, "rgb8", (30, 1), b"s" * 16, b"v" * 16, b"m" * 16,
                     {0x00081090: "test-board", 0x00181000: ""})


def _bradford_srgb():
    """The sRGB (IEC 61966-2-1) colorants adapted to D50 and the Bradford
    matrix, computed here in floating point from the primaries and white
    points (ICC.1:2010 Annex E)."""
    def xyz(x, y):
        return [x / y, 1.0, (1 - x - y) / y]

    def inverse(m):
        (a, b, c), (d, e, f), (g, h, i) = m
        det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
        return [[(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
                [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
                [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det]]

    def product(m, n):
        return [[sum(m[i][k] * n[k][j] for k in range(3)) for j in range(3)] for i in range(3)]

    def apply(m, v):
        return [sum(m[i][k] * v[k] for k in range(3)) for i in range(3)]

    primaries = [xyz(0.64, 0.33), xyz(0.30, 0.60), xyz(0.15, 0.06)]
    p = [[primaries[j][i] for j in range(3)] for i in range(3)]
    d65, d50 = xyz(0.3127, 0.3290), [0.9642, 1.0, 0.8249]
    scale = apply(inverse(p), d65)
    rgb_to_xyz = [[p[i][j] * scale[j] for j in range(3)] for i in range(3)]
    bradford = [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
    cone_src, cone_dst = apply(bradford, d65), apply(bradford, d50)
    gain = [[cone_dst[i] / cone_src[i] if i == j else 0 for j in range(3)] for i in range(3)]
    chad = product(inverse(bradford), product(gain, bradford))
    adapted = product(chad, rgb_to_xyz)
    return [[adapted[i][j] for i in range(3)] for j in range(3)], chad, d50


def test_icc_profile_is_srgb():
    """firmware/dicom/icc.py's integer constants are the sRGB colorants, the
    Bradford D65-to-D50 matrix and the sRGB curve (to one unit of their
    s15Fixed16 encoding, recomputed here), and LittleCMS (through Pillow)
    reads the profile as an RGB input profile that maps colours exactly as
    its own sRGB does."""
    from PIL import Image, ImageCms

    from firmware.dicom import icc

    colorants, chad, d50 = _bradford_srgb()
    fixed = lambda values: [round(v * 65536) for v in values]  # noqa: E731
    for ours, exact in zip(icc.COLORANTS, colorants):
        assert max(abs(a - b) for a, b in zip(ours, fixed(exact))) <= 1, (ours, fixed(exact))
    assert max(abs(a - b) for a, b in zip(icc.CHAD_D65_TO_D50, fixed(sum(chad, [])))) <= 1
    assert list(icc.D50) == fixed(d50)
    assert list(icc.SRGB_CURVE) == fixed([2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045])

    data = icc.srgb_profile()
    assert len(data) == struct.unpack(">I", data[:4])[0] and len(data) % 4 == 0
    profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    info = profile.profile
    assert (info.device_class, info.xcolor_space, info.connection_space) == ("scnr", "RGB ", "XYZ ")
    assert info.version == 4.3 and info.rendering_intent == 0  # C.11.15.1.1: perceptual
    colours = [(0, 0, 0), (255, 255, 255), (200, 100, 50), (10, 200, 30), (30, 40, 250), (128, 128, 128)]
    image = Image.new("RGB", (len(colours), 1))
    for x, colour in enumerate(colours):
        image.putpixel((x, 0), colour)
    out = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"),
                                    renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    for x, colour in enumerate(colours):
        assert max(abs(a - b) for a, b in zip(out.getpixel((x, 0)), colour)) <= 1, (colour, out.getpixel((x, 0)))


# -- ST 2110-21 timing, sans-I/O: the plan, the models, the sender on a fake clock

def test_the_plan_for_1080p30_from_the_standards_formulas():
    """ST 2110-21:2022 for 1920x1080 YCbCr-4:2:2 8-bit at 30 frames/s, 3240
    datagrams a frame, worked by hand: C_MAX = max(16, INT(3240 / (21600 /
    30))) = 16 and VRX_FULL = max(INT(1500 x 720 / 1500), INT(3240 / (300 /
    30))) = 720 (7.1.4); TRO_DEFAULT = 43/1125 x 1/30 s = 1274074 ns
    (6.3.2); the linear T_RS = 1/30 s / 3240 = 10288 ns (6.4); T_DRAIN =
    T_RS / 1.1 (6.6.1). modgate's TR_OFFSET: a quarter of VRX_FULL spare
    leaves 3/4 x 720 x 10288 = 5555520 ns of buffer, of which the plan uses
    3/4 TRO_DEFAULT 955555 + early 200000 + the gapped schedule's slack
    33333333 x 45/1125 = 1333333 + C_MAX x T_RS 164608 = 2653496, so
    2902024 ns more than TRO_DEFAULT fit (under the 4 ms cap): 4176098,
    4176000 in whole us (TROFF=4176). The first packet is due 1274074 / 4
    = 318518 ns after N x T_FRAME: 3857482 ns before TPR_0."""
    from firmware.rtv import pacing

    assert Packetizer(1920, 1080, "YCbCr-4:2:2").datagram_count() == 3240
    plan = pacing.Schedule(3240, (30, 1), 1080)
    assert (plan.cmax, plan.vrx_full, plan.burst) == (16, 720, 8)
    assert pacing.limits(pacing.WIDE, 3240, (30, 1)) == (16, 720, (1, 1))
    assert plan.tro_default == 1274074
    assert (plan.troffset, plan.troff_us(), plan.lead) == (4176000, 4176, 3857482)
    assert abs(plan.drain - 10288.066 / 1.1) < 0.01
    # the sender's spacing: 8 packets of the gapped schedule, 8 x 1/30 s x
    # (1080/1125) / 3240 = 79012 ns; the linear read of the last packet:
    # 3239 x 1/30 s / 3240 = 33323045 ns after TPR_0
    assert plan.offset_ns(0) == -3857482 and plan.offset_ns(8) == 79012 - 3857482
    assert plan.read_ns(0) == 0 and plan.read_ns(3239) == 33323045

    # A clock reading of 1800000000 s + 12345678 ns TAI is in frame slot
    # INT(1800000000.012345678 x 30) = 54000000000; that slot's TPR_0
    # (1.8e18 + 4176000 ns) has passed, so the frame goes in the next one,
    # whose instant is 54000000001 / 30 s = 1800000000033333333 ns and
    # whose RTP timestamp is 54000000001 x 3000 mod 2^32 = 2423532472.
    tai = 1800000000 * 1000000000 + 12345678
    assert pacing.frame_count(tai, (30, 1)) == 54000000000
    n = plan.slot(tai)
    assert n == 54000000001
    assert pacing.frame_start_ns(n, (30, 1)) == 1800000000033333333
    assert plan.tpr0_ns(n) == 1800000000033333333 + 4176000
    assert frame_timestamp(n, (30, 1)) == 2423532472
    # ready a nanosecond before that TPR_0 it still makes the slot; at the
    # read itself it does not; a slot already used is not used again
    assert plan.slot(plan.tpr0_ns(n) - 1) == n and plan.slot(plan.tpr0_ns(n)) == n + 1
    assert plan.slot(tai, after=n + 5) == n + 5

    # 30000/1001: TRO_DEFAULT = 43/1125 x 1001/30000 s = 1275348 ns; the
    # slot INT(1800000000.012345678 x 30000/1001) = 53946053946; the RTP
    # timestamp 3003 ticks a frame
    assert pacing.tro_default_ns(1080, (30000, 1001)) == 1275348
    assert pacing.frame_count(tai, (30000, 1001)) == 53946053946
    assert frame_timestamp(53946053946, (30000, 1001)) == 53946053946 * 3003 % 2**32
    # below 1080 lines: 28/750 x 1/25 s = 1493333 ns
    assert pacing.tro_default_ns(480, (25, 1)) == 1493333


@pytest.mark.parametrize("rate", [(30, 1), (25, 1), (30000, 1001), (60000, 1001), (24000, 1001)])
def test_the_frame_slot_of_an_rtp_timestamp(rate):
    """ST 2110-10: frame slot n's RTP timestamp is the 90 kHz media clock at
    n x T_FRAME, floored (60000/1001: 1501.5 ticks a frame), modulo 2^32;
    the receiver recovers n from it and a clock reading near it, across the
    13-hour wrap."""
    from firmware.rtv.pacing import frame_of_timestamp, frame_start_ns

    base = 1800000000 * rate[0] // rate[1]  # some 57 years of frames
    for n in list(range(base, base + 5)) + [base + 2**32 * rate[1] // (3 * rate[0]) + k for k in range(3)]:
        ts = frame_timestamp(n, rate)
        assert ts == n * 90000 * rate[1] // rate[0] % 2**32
        instant = frame_start_ns(n, rate)
        for near in (instant, instant + 3000000, instant - 40000000):  # the arrival, or a clock off a little
            assert frame_of_timestamp(ts, near, rate) == n, (n, near)
    assert frame_timestamp(1, (60000, 1001)) == 1501 and frame_timestamp(2, (60000, 1001)) == 3003


def _arrivals_on_plan(plan, n, burst=None):
    """Departures exactly on the sender's plan for frame slot n, a burst at
    a time (TAI ns)."""
    burst = burst or plan.burst
    out = []
    for j in range(plan.npackets):
        first = j - j % burst
        out.append(plan.tpr0_ns(n) + plan.offset_ns(first))
    return out


def test_the_virtual_receiver_flags_a_buffer_over_vrx_full():
    """ST 2110-21 6.6.2 over synthetic arrivals, 1080p30 (3240 packets,
    VRX_FULL 720, linear reads T_RS = 10288 ns from TPR_0): departures on
    modgate's plan hold the buffer to lead / T_RS + 3240 x 45/1125 + 8 =
    375 + 130 + 8 = 513 packets; 720 packets in the buffer at TPR_0 are
    within VRX_FULL, 721 are not, and the whole frame at once is 3240."""
    from firmware.rtv import pacing
    from tools.rtv_receiver import VideoFlow

    plan = pacing.Schedule(3240, (30, 1), 1080)
    n = 54000000001
    tpr0 = plan.tpr0_ns(n)

    def model():
        return pacing.VirtualReceiver(3240, (30, 1), plan.troffset)

    on_plan = model()
    on_plan.frame(n, _arrivals_on_plan(plan, n))
    assert 505 <= on_plan.peak <= 515 and on_plan.late_frames == 0
    assert on_plan.first_ns == (-plan.lead, -plan.lead)
    assert on_plan.late_ns == -plan.lead  # packet 0 is the closest to its read

    def early(count):
        """count packets in the buffer a nanosecond before TPR_0, the rest
        each at its own read"""
        return [tpr0 - 1] * count + [tpr0 + plan.read_ns(j) for j in range(count, 3240)]

    full = model()
    full.frame(n, early(720))
    assert (full.peak, full.late_frames) == (720, 0)
    over = model()
    over.frame(n, early(721))
    assert (over.peak, over.late_frames) == (721, 0)
    burst = model()
    burst.frame(n, [tpr0 - 1] * 3240)
    assert burst.peak == 3240

    # the receiver's verdicts, from the same model: over VRX_FULL is a
    # problem, at it is not (720 at once are over C_MAX, another problem)
    for arrivals, peak, flagged in ((early(720), 720, False), (early(721), 721, True),
                                    (_arrivals_on_plan(plan, n), on_plan.peak, False)):
        flow = VideoFlow(1920, 1080, "YCbCr-4:2:2", 8, (30, 1), troffset_ns=plan.troffset)
        flow.time_frame(frame_timestamp(n, (30, 1)), arrivals, True)
        figures, problems, clocked = flow.timing()
        assert (figures["vrx_peak"], figures["vrx_full"]) == (peak, 720)
        assert any("VRX peaked" in p for p in clocked) == flagged, (figures, clocked)
        assert bool(problems) == (peak >= 720), problems


def test_the_virtual_receiver_finds_a_packet_after_its_read():
    """6.6.2: packet j must have left by TPR_j. A packet 1 ms after its
    read makes the frame late (beyond a 100 us tolerance), one 50 us after
    it does not; a first packet before its frame's instant N x T_FRAME is
    flagged too; a frame whose packets arrive before the previous frame's
    last reads adds to that frame's buffer."""
    from firmware.rtv import pacing
    from tools.rtv_receiver import VideoFlow

    plan = pacing.Schedule(3240, (30, 1), 1080)
    n = 54000000001
    tpr0 = plan.tpr0_ns(n)
    reads = [tpr0 + plan.read_ns(j) for j in range(3240)]

    def late_by(j, ns):
        arrivals = list(reads)
        for k in range(j, 3240):  # in order: the ones behind it wait too
            arrivals[k] = max(arrivals[k], reads[j] + ns)
        return arrivals

    for ns, late in ((1000000, 1), (50000, 0)):
        model = pacing.VirtualReceiver(3240, (30, 1), plan.troffset, tolerance_ns=100000)
        model.frame(n, late_by(1000, ns))
        assert (model.late_frames, model.late_ns) == (late, ns)
        flow = VideoFlow(1920, 1080, "YCbCr-4:2:2", 8, (30, 1), troffset_ns=plan.troffset)
        flow.time_frame(frame_timestamp(n, (30, 1)), late_by(1000, ns), True)
        _, _, clocked = flow.timing()
        assert any("after its read" in p for p in clocked) == bool(late), clocked

    # the first packet before the frame's instant: more than TR_OFFSET early
    flow = VideoFlow(1920, 1080, "YCbCr-4:2:2", 8, (30, 1), troffset_ns=plan.troffset)
    flow.time_frame(frame_timestamp(n, (30, 1)), [tpr0 - plan.troffset - 1] + reads[1:], True)
    assert any("before its frame's instant" in p for p in flow.timing()[2])
    # an RTP timestamp that is no frame instant's
    flow.time_frame(frame_timestamp(n + 1, (30, 1)) + 1, [r + plan.frame_ns for r in reads], True)
    assert flow.off_epoch == 1

    # carry-over: frame n's last read is 3239 x 10288.07 = 33323045 ns
    # after its TPR_0, 10288 ns before TPR_0(n+1). Frame n+1 arriving whole
    # 11 us before its TPR_0 finds that read still to come: 3240 + 1 in the
    # buffer; 10 us before, it has happened: 3240.
    for ahead, peak in ((11000, 3241), (10000, 3240)):
        model = pacing.VirtualReceiver(3240, (30, 1), plan.troffset)
        model.frame(n, reads)
        model.frame(n + 1, [plan.tpr0_ns(n + 1) - ahead] * 3240)
        assert model.peak == peak
    model = pacing.VirtualReceiver(3240, (30, 1), plan.troffset)
    model.frame(n, reads)
    model.gap()  # after a lost frame nothing carries over
    model.frame(n + 2, [plan.tpr0_ns(n + 2) - 11000] * 3240)
    assert model.peak == 3240


def test_the_network_compatibility_model():
    """6.6.1: packets drain one a T_DRAIN = T_FRAME / N / 1.1 at instants
    k x T_DRAIN since the epoch. 1080p30: T_DRAIN = 1/30 s / 3240 / 1.1 =
    9352.8 ns. A packet each T_DRAIN never holds more than 1; 16 at once
    are C_MAX, 17 are over; a burst of 8 every 8 drains stays at 8."""
    from firmware.rtv import pacing

    drain = pacing.drain_ns(3240, (30, 1))
    assert abs(drain - 9352.79) < 0.01
    t0 = 1800000000033333333  # frame slot 54000000001's instant

    def peak(times, counts=None):
        model = pacing.NetworkCompatibility(3240, (30, 1))
        for i, t in enumerate(times):
            model.arrive(t, counts[i] if counts else 1)
        return model.peak

    # the drain instants k x T_DRAIN = k x 10^10 / (30 x 3240 x 11) ns
    k0 = t0 * 30 * 3240 * 11 // 10**10

    def tick(k):
        return -(-k * 10**10 // (30 * 3240 * 11))  # the first ns at or after it

    assert peak([tick(k0 + k) for k in range(3000)]) == 1
    # half a drain late, they still leave one a drain: never 2 inside
    assert peak([tick(k0 + k) + 4676 for k in range(3000)]) == 1
    # two a drain is twice the rate the bucket drains: it fills
    assert peak([tick(k0 + k // 2) for k in range(100)]) == 51
    assert peak([t0], [16]) == 16 and peak([t0], [17]) == 17
    assert peak([tick(k0 + 8 * k) for k in range(400)], [8] * 400) == 8
    # the sender's plan: bursts of 8 at the gapped spacing stay at 8
    plan = pacing.Schedule(3240, (30, 1), 1080)
    arrivals = _arrivals_on_plan(plan, 54000000001)
    model = pacing.NetworkCompatibility(3240, (30, 1))
    for i in range(0, 3240, 8):
        model.arrive(arrivals[i], 8)
    assert model.peak == 8 <= plan.cmax


class _FakeClock:
    """A hal clock on which time passes when the sender sleeps, when a sink
    says a send took a while, and by 10 ns at each reading (so that a
    sender spinning on it gets somewhere): monotonic from 0, TAI offset by
    1800000000 s + 12345678 ns."""

    TAI = 1800000000 * 1000000000 + 12345678

    def __init__(self):
        self.t = 0

    def monotonic_ns(self):
        self.t += 10
        return self.t

    def tai_ns(self):
        return self.t + self.TAI

    def sleep_ns(self, n):
        if n > 0:
            self.t += n


class _Sink:
    def __init__(self, clock, takes_ns=0):
        self.clock, self.takes, self.sent = clock, takes_ns, []

    def send(self, datagrams):
        self.clock.t += self.takes
        self.sent.append((self.clock.t, len(datagrams), [bytes(d[:12]) for d in datagrams[:1]]))

    def send_joined(self, data, size, count):
        self.clock.t += self.takes
        self.sent.append((self.clock.t, count, [bytes(data[:12])]))

    def close(self):
        pass


def test_the_sender_on_a_fake_clock_keeps_the_epoch():
    """The Streamer on a clock that only moves when it sleeps: frame k goes
    in slot 54000000001 + k (the first one whose TPR_0 is ahead of the
    clock, then the next ones), its RTP timestamp (54000000001 + k) x 3000
    mod 2^32, its first burst at N x T_FRAME + TRO_DEFAULT / 4, its bursts
    on the plan; the departures hold both models; nothing is late. When
    the source takes two frame periods to deliver, the slots in between are
    missed and counted; when every send call takes 1 ms, the bursts fall
    behind the reads and the frames are counted late."""
    import struct

    from firmware.rtv import pacing
    from firmware.streaming import Streamer

    clock = _FakeClock()
    video, meta = _Sink(clock), _Sink(clock)
    streamer = Streamer(1920, 1080, "ycbcr422", (30, 1), video, meta, clock, attributes=EQUIPMENT)
    plan = streamer.schedule
    assert (plan.troffset, plan.lead) == (4176000, 3857482)
    frame = Pattern("ycbcr422", 1920, 1080).frame(0)
    offset = _FakeClock.TAI
    network = pacing.NetworkCompatibility(3240, (30, 1))
    buffer = pacing.VirtualReceiver(3240, (30, 1), plan.troffset)
    for k in range(3):
        video.sent = []
        assert streamer.send(frame) is True
        n = 54000000001 + k
        stamps = {struct.unpack(">I", head[0][4:8])[0] for _, _, head in video.sent}
        assert stamps == {n * 3000 % 2**32}
        first = video.sent[0][0] + offset
        due = pacing.frame_start_ns(n, (30, 1)) + 318518  # TRO_DEFAULT / 4 after the instant
        assert 0 <= first - due < 1000
        assert meta.sent[-1][0] + offset <= first
        assert sum(count for _, count, _ in video.sent) == 3240
        arrivals = []
        for t, count, _ in video.sent:
            network.arrive(t + offset, count)
            arrivals += [t + offset] * count
        buffer.frame(n, arrivals)
        # each burst on the plan (the fake sleeps wake on time)
        for (t, _, _), j in zip(video.sent, range(0, 3240, 8)):
            assert 0 <= t + offset - (plan.tpr0_ns(n) + plan.offset_ns(j)) < 1000
    assert network.peak <= plan.cmax and buffer.peak <= plan.vrx_full and buffer.late_frames == 0
    assert (streamer.frames, streamer.late, streamer.slots_missed) == (3, 0, 0)

    # a source two frame periods late: the slots it missed are counted
    clock.t += 2 * plan.frame_ns
    video.sent = []
    streamer.send(frame)
    assert streamer.slots_missed == 2
    stamps = {struct.unpack(">I", head[0][4:8])[0] for _, _, head in video.sent}
    assert stamps == {(54000000001 + 5) * 3000 % 2**32}

    # a first send call that returns 30 us after TPR_0: packet 0 was read
    # before it had surely left, though the burst's last packet (read
    # 7 x 10288 ns later) had: late
    class FirstSlow(_Sink):
        def send_joined(self, data, size, count):
            if not self.sent:
                self.clock.t += plan.lead + 30000
            _Sink.send_joined(self, data, size, count)

    streamer.video_sink = FirstSlow(clock)
    assert streamer.send(frame) is False and streamer.late == 1
    # a sink that takes 1 ms a call: 405 calls a frame, 405 ms behind
    streamer.video_sink = _Sink(clock, takes_ns=1000000)
    assert streamer.send(frame) is False and streamer.late == 2


class _EventClock(_FakeClock):
    """_FakeClock on which things happen at set times: at(t, fn) runs fn
    once the clock reaches t (in a sleep, or advance_to)."""

    def __init__(self):
        _FakeClock.__init__(self)
        self.events = []

    def at(self, t, fn):
        self.events.append((t, fn))
        self.events.sort(key=lambda event: event[0])

    def advance_to(self, t):
        while self.events and self.events[0][0] <= t:
            when, fn = self.events.pop(0)
            self.t = max(self.t, when)
            fn()
        self.t = max(self.t, t)

    def sleep_ns(self, n):
        if n > 0:
            self.advance_to(self.t + n)


class _FrameSink(_Sink):
    """Which frame each send carried: its first datagram, whole."""

    def send(self, datagrams):
        _Sink.send(self, datagrams)
        self.sent[-1] = self.sent[-1] + (bytes(datagrams[0]),)

    def send_joined(self, data, size, count):
        _Sink.send_joined(self, data, size, count)
        self.sent[-1] = self.sent[-1] + (bytes(data[:size]),)


@pytest.mark.parametrize("phase", ["before TPR_0", "jittered"])
def test_the_live_stream_is_a_frame_sync(phase):
    """The gateway's live stream (firmware/live.py LiveStream) takes frames
    on the slot grid. Ten frames from a source at the flow's rate, at a
    phase that used to hurt: each coming after its slot's first datagram
    was due but before TPR_0 (sent as it came, it started behind its
    plan), or alternately 0.2 ms either side of the moment a slot's frame
    is taken. Every frame leaves whole, in order, on its slot's plan; none
    late, none skipped; at most one slot missed, when the queue takes up
    the jitter."""
    import struct

    from firmware.live import SYNC_MARGIN_NS, LiveStream
    from firmware.rtv import pacing
    from firmware.streaming import Streamer

    clock = _EventClock()
    video, meta = _FrameSink(clock), _Sink(clock)
    width, height, count = 320, 240, 10
    streamer = Streamer(width, height, "ycbcr422", (30, 1), video, meta, clock, attributes=EQUIPMENT)
    plan = streamer.schedule
    live = LiveStream(streamer)
    pattern = Pattern("ycbcr422", width, height)
    frames = [pattern.frame(k) for k in range(count)]
    offset = _EventClock.TAI
    n0 = pacing.frame_count(offset, (30, 1)) + 2

    def due(n):  # slot n's first datagram, on the monotonic clock
        return plan.tpr0_ns(n) + plan.offset_ns(0) - offset

    if phase == "before TPR_0":
        arrive = [due(n0 + k) + plan.lead // 2 for k in range(count)]
    else:
        arrive = [due(n0 + k) - SYNC_MARGIN_NS + (200000 if k % 2 else -200000) for k in range(count)]
    for k, t in enumerate(arrive):
        clock.at(t, lambda k=k: live.offer(frames[k], clock.t))
    firsts = []
    while streamer.frames < count and (live.waiting() or clock.events):
        if not live.waiting():  # nothing waiting: on to the next frame
            clock.advance_to(clock.events[0][0])
            continue
        before = len(video.sent)
        live.step()
        if len(video.sent) > before:
            firsts.append(video.sent[before])
    assert (streamer.late, live.skipped) == (0, 0)
    assert streamer.slots_missed <= 1
    # in order, each the frame it should be
    assert len(firsts) == count and all(frame[:64] in first[3] for first, frame in zip(firsts, frames))
    slots = [struct.unpack(">I", first[2][0][4:8])[0] // 3000 for first in firsts]
    assert slots == sorted(set(slots)) and all(b - a <= 2 for a, b in zip(slots, slots[1:]))
    for (t, _, head, _), k in zip(firsts, range(count)):
        n = next(m for m in range(n0, n0 + 2 * count) if m * 3000 % 2**32 == struct.unpack(">I", head[0][4:8])[0])
        assert 0 <= t - due(n) < 1000  # its first burst on the plan
        assert due(n) - arrive[k] < 2 * plan.frame_ns  # it waited under two frame periods
    with pytest.raises(ValueError, match="was used already"):
        streamer.send(frames[0], slot=n)
