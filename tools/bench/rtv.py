"""PS3.22 real-time streaming benchmark, from one run on this machine.

    python tools/bench/rtv.py [--seconds 60] [--rate-frames 300]

1. Highest packet rate, 1920x1080 UYVY (8-bit YCbCr-4:2:2), unpaced, into
   a UDP port on loopback that nobody reads (the kernel drops what it
   cannot queue; both tools pay the same send path):
   - modgate: firmware.rtv.st2110_20 bursts + hal.udp (UDP GSO), the same
     frames looped (the simulated board's cost is left out: it is the
     board's, not the sender's);
   - anchor: GStreamer `videotestsrc ! rtpvrawpay ! udpsink sync=false`,
     its packets per frame counted once with a receiver;
   prints packets/s of each and the ratio (target >= 1.0).
2. 1080p30 YCbCr-4:2:2 8-bit in real time for --seconds: `modgate stream`
   (simulated board, paced ST 2110-21 wide sender) into tools/rtv_receiver
   on loopback; prints frames late (sender: a burst after its first
   datagram's ST 2110-21 read), datagrams lost and frames incomplete
   (receiver), C_INST's and VRX's peaks vs C_MAX and VRX_FULL and the
   receiver's own count of datagrams after their reads, and the
   sender's CPU from GNU time (user + sys over wall; target: 0 late, 0 lost,
   < 1 core).
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


def gst_packets_per_frame(gst):
    """rtpvrawpay's datagrams for one 1080p UYVY frame, counted."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        rx.bind(("127.0.0.1", port))
        rx.settimeout(2.0)
        subprocess.run([gst, "-q", "videotestsrc", "num-buffers=1", "!",
                        "video/x-raw,format=UYVY,width=%d,height=%d" % (W, H), "!", "rtpvrawpay", "!",
                        "udpsink", "host=127.0.0.1", "port=%d" % port, "sync=false"], check=True, timeout=60)
        n = 0
        try:
            while True:
                rx.recv(65536)
                n += 1
        except socket.timeout:
            pass
    return n


def gst_rate(gst, frames, per_frame):
    port = free_port()
    t = time.perf_counter()
    subprocess.run([gst, "-q", "videotestsrc", "num-buffers=%d" % frames, "!",
                    "video/x-raw,format=UYVY,width=%d,height=%d" % (W, H), "!", "rtpvrawpay", "!",
                    "udpsink", "host=127.0.0.1", "port=%d" % port, "sync=false"], check=True, timeout=600)
    elapsed = time.perf_counter() - t
    # the pipeline's own start-up, measured with one frame, is not sending
    t = time.perf_counter()
    subprocess.run([gst, "-q", "videotestsrc", "num-buffers=1", "!",
                    "video/x-raw,format=UYVY,width=%d,height=%d" % (W, H), "!", "rtpvrawpay", "!",
                    "udpsink", "host=127.0.0.1", "port=%d" % port, "sync=false"], check=True, timeout=60)
    startup = time.perf_counter() - t
    return (frames - 1) * per_frame / max(elapsed - startup, 1e-6)


def realtime(seconds):
    frames = int(seconds * 30)
    port = free_port()
    with tempfile.TemporaryDirectory() as sdp_dir:
        from firmware.rtv.sdp import metadata_sdp, video_sdp

        video = video_sdp("127.0.0.1", port, W, H, (30, 1), "YCbCr-4:2:2", 8)
        meta = metadata_sdp("127.0.0.1", port + 2)
        receiver = Receiver(video, meta)
        cmd = ["/usr/bin/time", "-f", "CPU %U %S %e", sys.executable, "-m", "tools.cli", "stream",
               "--size", "%dx%d" % (W, H), "--pixel", "ycbcr422", "--rate", "30", "--frames", str(frames),
               "--dest", "127.0.0.1:%d" % port, "--sdp-dir", sdp_dir]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            report = receiver.run(seconds=seconds + 30, frames=frames)
        finally:
            receiver.close()
        _, err = proc.communicate(timeout=120)
    late = None
    cpu = None
    for line in err.splitlines():
        if "late" in line and "streamed" in line:
            late = int(line.split(" late")[0].rsplit(" ", 1)[1])
            summary = line
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

    ours, per_frame, dropped = modgate_rate(args.rate_frames, GSO_MAX_SEGMENTS)
    ours16, _, _ = modgate_rate(args.rate_frames, 16)
    gst_pf = gst_packets_per_frame(gst)
    theirs = gst_rate(gst, args.rate_frames, gst_pf)
    print("packet rate, 1920x1080 UYVY unpaced on loopback, %d frames:" % args.rate_frames)
    print("  modgate   %9.0f datagrams/s (%d a frame, bursts of %d; %.0f with bursts of 16)"
          % (ours, per_frame, GSO_MAX_SEGMENTS, ours16))
    print("  GStreamer %9.0f datagrams/s (%d a frame, rtpvrawpay ! udpsink)" % (theirs, gst_pf))
    print("  ratio     %9.2f  (target >= 1.0)" % (ours / theirs))
    print("  frames/s: modgate %.1f, GStreamer %.1f" % (ours / per_frame, theirs / gst_pf))

    report, late, cpu, summary = realtime(args.seconds)
    v = report["video"]
    print("real time, 1080p30 YCbCr-4:2:2 8-bit, %.0f s, modgate stream -> tools/rtv_receiver:" % args.seconds)
    print("  sender: %s" % summary.split(": ", 1)[1])
    print("  frames late %s, datagrams lost %d, frames incomplete %d, metadata lost %d" % (
        late, v["lost"], v["incomplete"], report["metadata"]["lost"]))
    print("  C_INST peak %d (C_MAX %d), VRX peak %d (VRX_FULL %d), at the receiver's socket (ST 2110-21 %s)" % (
        v["cinst_peak"], v["cmax"], v["vrx_peak"], v["vrx_full"], v["sender_type"]))
    print("  frames with a datagram after its read %d (tolerance %.0f us), first datagram %s us from TPR_0 "
          "(TROFF %.0f us), RTP timestamps off the epoch %d" % (
              v["late_frames"], v["tolerance_us"], v.get("first_packet_us"), v["troffset_us"],
              v["off_epoch_timestamps"]))
    print("  sender CPU %.2f cores (target < 1)" % cpu)


if __name__ == "__main__":
    main()
