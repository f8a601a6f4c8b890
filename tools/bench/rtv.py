"""PS3.22 real-time streaming benchmark, from one run on this machine.

    python tools/bench/rtv.py [--seconds 60] [--rate-frames 300]

1. Highest packet rate, 1920x1080 UYVY (8-bit YCbCr-4:2:2), unpaced, into
   a UDP port on loopback that nobody reads (the kernel drops what it
   cannot queue; both tools pay the same send path), both sending frames
   made before the run, so neither pays for a source:
   - modgate: firmware.rtv.st2110_20 bursts + hal.udp (UDP GSO), eight
     frames of the simulated board's pattern made beforehand, looped;
   - anchor: GStreamer `multifilesrc loop=true` of one frame of the same
     pattern in a file (the page cache: a read, no pattern drawn)
     `! rtpvrawpay ! udpsink sync=false`, its packets per frame counted
     once with a receiver; and, for reference, `videotestsrc
     pattern=solid-color`, GStreamer's cheapest pattern;
   prints packets/s of each and the ratio to the pre-made anchor
   (target >= 1.0).
2. 1080p30 YCbCr-4:2:2 8-bit in real time for --seconds, twice, so the
   receiver's load is off the sender's core when lateness is measured:
   - lateness: `modgate stream` (simulated board, paced ST 2110-21 wide
     sender on the media clock's epoch) into a port nobody reads; prints
     frames late (a burst sent after the virtual receiver read its first
     datagram, ST 2110-21 6.6.2; target 0), frame slots missed, and the
     sender's CPU from GNU time (user + sys over wall, target < 1);
   - the wire: the same into tools/rtv_receiver on loopback; prints
     datagrams lost, frames incomplete, metadata lost, the peaks of C_INST
     and VRX at the receiver against their wide-sender limits (ST 2110-21
     6.6.1, 6.6.2), the receiver's own count of frames with a datagram
     after its read, the first datagram's offset from TPR_0 and RTP
     timestamps off the epoch.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from firmware.rtv.st2110_20 import Packetizer  # noqa: E402
from hal.acq.sim import Pattern  # noqa: E402
from hal.nic import LoopbackNIC  # noqa: E402
from hal.udp import GSO_MAX_SEGMENTS, DatagramSender  # noqa: E402
from tools.rtv_receiver import Receiver  # noqa: E402

W, H = 1920, 1080


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1] & ~1


def modgate_rate(frames, burst):
    pattern = Pattern("ycbcr422", W, H)
    pool = [pattern.frame(k) for k in range(8)]
    pk = Packetizer(W, H, "YCbCr-4:2:2")
    port = free_port()
    sender = DatagramSender(LoopbackNIC(), ("127.0.0.1", port))
    t = time.perf_counter()
    for k in range(frames):
        for data, size, count in pk.bursts(pool[k % len(pool)], k * 3000, burst):
            sender.send_joined(data, size, count)
    elapsed = time.perf_counter() - t
    sender.close()
    return frames * pk.datagram_count() / elapsed, pk.datagram_count(), sender.dropped


def frame_file(folder):
    """One 1080p UYVY frame of the simulated board's pattern, in a file."""
    path = os.path.join(folder, "frame.uyvy")
    with open(path, "wb") as f:
        f.write(bytes(Pattern("ycbcr422", W, H).frame(0)))
    return path


def gst_source(kind, frames, frame_path):
    caps = "video/x-raw,format=UYVY,width=%d,height=%d,framerate=30/1" % (W, H)
    if kind == "premade":
        return ["multifilesrc", "location=%s" % frame_path, "loop=true", "num-buffers=%d" % frames,
                "caps=%s" % caps]
    return ["videotestsrc", "pattern=solid-color", "num-buffers=%d" % frames, "!", caps]


def gst_send(gst, kind, frames, frame_path, port):
    args = [gst, "-q"] + gst_source(kind, frames, frame_path) + [
        "!", "rtpvrawpay", "!", "udpsink", "host=127.0.0.1", "port=%d" % port, "sync=false"]
    t = time.perf_counter()
    subprocess.run(args, check=True, timeout=600)
    return time.perf_counter() - t


def gst_packets_per_frame(gst, frame_path):
    """rtpvrawpay's datagrams for one 1080p UYVY frame, counted."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        rx.bind(("127.0.0.1", port))
        rx.settimeout(2.0)
        gst_send(gst, "premade", 1, frame_path, port)
        n = 0
        try:
            while True:
                rx.recv(65536)
                n += 1
        except socket.timeout:
            pass
    return n


def gst_rate(gst, kind, frames, per_frame, frame_path):
    port = free_port()
    elapsed = gst_send(gst, kind, frames, frame_path, port)
    # the pipeline's own start-up, measured with one frame, is not sending
    startup = gst_send(gst, kind, 1, frame_path, port)
    return (frames - 1) * per_frame / max(elapsed - startup, 1e-6)


def realtime(seconds, read):
    """One real-time run of `modgate stream`: (the receiver's report or
    None, frames late, sender CPU in cores, the sender's summary)."""
    frames = int(seconds * 30)
    port = free_port()
    with tempfile.TemporaryDirectory() as sdp_dir:
        from firmware.rtv.sdp import metadata_sdp, video_sdp

        video = video_sdp("127.0.0.1", port, W, H, (30, 1), "YCbCr-4:2:2", 8)
        meta = metadata_sdp("127.0.0.1", port + 2)
        receiver = Receiver(video, meta) if read else None
        cmd = ["/usr/bin/time", "-f", "CPU %U %S %e", sys.executable, "-m", "tools.cli", "stream",
               "--size", "%dx%d" % (W, H), "--pixel", "ycbcr422", "--rate", "30", "--frames", str(frames),
               "--dest", "127.0.0.1:%d" % port, "--sdp-dir", sdp_dir]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        report = None
        if receiver is not None:
            try:
                report = receiver.run(seconds=seconds + 30, frames=frames)
            finally:
                receiver.close()
        _, err = proc.communicate(timeout=seconds + 120)
    late = cpu = None
    summary = "(no summary: %s)" % err.strip()[-300:]
    for line in err.splitlines():
        if "late" in line and "streamed" in line:
            late = int(line.split(" late")[0].rsplit(" ", 1)[1])
            summary = line.split(": ", 1)[1]
        if line.startswith("CPU "):
            user, sys_, wall = (float(x) for x in line.split()[1:])
            cpu = (user + sys_) / wall
    return report, late, cpu, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="real-time run length (default 60)")
    parser.add_argument("--rate-frames", type=int, default=300, help="frames for the packet-rate runs")
    args = parser.parse_args()
    gst = "/usr/bin/gst-launch-1.0"
    if not os.access(gst, os.X_OK):
        raise SystemExit("gst-launch-1.0 not found; install Debian's gstreamer1.0-tools gstreamer1.0-plugins-good")

    with tempfile.TemporaryDirectory() as folder:
        path = frame_file(folder)
        ours, per_frame, dropped = modgate_rate(args.rate_frames, GSO_MAX_SEGMENTS)
        ours16, _, _ = modgate_rate(args.rate_frames, 16)
        gst_pf = gst_packets_per_frame(gst, path)
        premade = gst_rate(gst, "premade", args.rate_frames, gst_pf, path)
        solid = gst_rate(gst, "solid", args.rate_frames, gst_pf, path)
    print("packet rate, 1920x1080 UYVY unpaced on loopback, %d pre-made frames:" % args.rate_frames)
    print("  modgate   %9.0f datagrams/s (%d a frame, bursts of %d; %.0f with bursts of 16)"
          % (ours, per_frame, GSO_MAX_SEGMENTS, ours16))
    print("  GStreamer %9.0f datagrams/s (%d a frame, multifilesrc of a frame ! rtpvrawpay ! udpsink)"
          % (premade, gst_pf))
    print("  GStreamer %9.0f datagrams/s (videotestsrc pattern=solid-color, for reference)" % solid)
    print("  ratio     %9.2f  (modgate / GStreamer pre-made; target >= 1.0)" % (ours / premade))
    print("  frames/s: modgate %.1f, GStreamer %.1f" % (ours / per_frame, premade / gst_pf))

    print("real time, 1080p30 YCbCr-4:2:2 8-bit, %.0f s, modgate stream (paced, wide sender):" % args.seconds)
    _, late, cpu, summary = realtime(args.seconds, read=False)
    print("  lateness, nobody reading: %s" % summary)
    print("  frames late %s (target 0), sender CPU %.2f cores (target < 1)" % (late, cpu))
    report, late2, cpu2, summary2 = realtime(args.seconds, read=True)
    v = report["video"]
    print("  the wire, tools/rtv_receiver reading: %s" % summary2)
    print("  datagrams lost %d, frames incomplete %d, metadata lost %d" % (
        v["lost"], v["incomplete"], report["metadata"]["lost"]))
    print("  C_INST peak %d (C_MAX %d), VRX peak %d (VRX_FULL %d), at the receiver's socket (ST 2110-21 %s)" % (
        v["cinst_peak"], v["cmax"], v["vrx_peak"], v["vrx_full"], v["sender_type"]))
    print("  frames with a datagram after its read: %d at the receiver (tolerance %.0f us), %s by the sender; "
          "first datagram %s us from TPR_0 (TROFF %.0f us), RTP timestamps off the epoch %d" % (
              v["late_frames"], v["tolerance_us"], late2, v.get("first_packet_us"), v["troffset_us"],
              v["off_epoch_timestamps"]))


if __name__ == "__main__":
    main()
