"""Codec benchmark (issue 16): H.264 through hal/codec against FFmpeg's
libx264 on the same frames with the same settings, from one run.

    python tools/bench/codec.py [--frames 300] [--dir DIR]

Prints:
- modgate's encoder throughput for 1920x1080 rgb8 at 30 fps on one core, as
  frames/s and as a ratio to real time (target >= 1.0);
- `ffmpeg -c:v libx264` on the same pre-made raw frames (read from a file,
  so both sides pay the same source cost) with the same settings (preset
  veryfast, tune zerolatency, CRF 23, 1 thread, no B-frames, 2 references,
  High profile, level 4.1, BT.601 limited range), and modgate's ratio to it
  (target >= 0.9). Both convert RGB to 4:2:0 (libyuv here, swscale there);
- the peak RSS of `modgate capture --transfer-syntax h264` for 60 and for
  1800 frames of 1080p (their difference: target < 8 MiB);
- bytes per minute of 1080p30 H.264 against the uncompressed object
  (target <= 1/50).

The frames are the simulated board's pattern (hal/acq/sim.py), which is
harder to compress than a real endoscope's image (sharp, moving wraps).
Measure with nothing else running on the machine.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from hal.acq.sim import Pattern  # noqa: E402
from hal.codec import open_encoder  # noqa: E402
from tools.bench.encode import peak_rss_of  # noqa: E402

WIDTH, HEIGHT, RATE = 1920, 1080, 30
DISTINCT = 30  # pre-made frames, used in turn


def modgate_fps(frames, count):
    codec = open_encoder("h264", WIDTH, HEIGHT, "rgb8", (RATE, 1))
    size = 0
    started = time.perf_counter()
    for k in range(count):
        for unit in codec.encode(frames[k % len(frames)]):
            size += len(unit)
    for unit in codec.flush():
        size += len(unit)
    elapsed = time.perf_counter() - started
    codec.close()
    return count / elapsed, size


def ffmpeg_fps(raw_path, count):
    args = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "%dx%d" % (WIDTH, HEIGHT),
            "-r", str(RATE), "-stream_loop", str(count // DISTINCT - 1), "-i", raw_path, "-frames:v", str(count),
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", "23", "-threads", "1",
            "-x264-params", "bframes=0:ref=2:rc-lookahead=0:sync-lookahead=0:sliced-threads=0:fullrange=off:"
                            "colormatrix=bt470bg:colorprim=bt470bg:transfer=bt470bg",
            "-profile:v", "high", "-level", "4.1", "-pix_fmt", "yuv420p", "-f", "h264", "-"]
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, check=True).stdout
    return count / (time.perf_counter() - started), len(out)


def capture_peak(frames, out_dir):
    args = [sys.executable, "-m", "tools.cli", "capture", "--transfer-syntax", "h264", "--iod", "video-endoscopic",
            "--frames", str(frames), "--size", "%dx%d" % (WIDTH, HEIGHT), "--out", out_dir]
    peak = peak_rss_of(args)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    return peak, size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames for the throughput runs (default 300)")
    parser.add_argument("--dir", help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg not found (Debian: ffmpeg)")
    count = max(DISTINCT, args.frames // DISTINCT * DISTINCT)
    folder = args.dir or tempfile.mkdtemp(prefix="modgate-codec-")
    os.makedirs(folder, exist_ok=True)
    try:
        # The peaks first, while this process is small: a child's ru_maxrss
        # counts what it shared with us between fork and exec.
        out_dir = os.path.join(folder, "capture")
        os.makedirs(out_dir, exist_ok=True)
        short_peak, _ = capture_peak(60, out_dir)
        long_peak, long_size = capture_peak(1800, out_dir)
        pattern = Pattern("rgb8", WIDTH, HEIGHT)
        frames = [pattern.frame(k) for k in range(DISTINCT)]
        raw = os.path.join(folder, "frames.rgb")
        with open(raw, "wb") as f:
            for frame in frames:
                f.write(frame)
        ours, our_bytes = modgate_fps(frames, count)
        theirs, their_bytes = ffmpeg_fps(raw, count)
        print("1920x1080 rgb8, %d frames, 1 thread: modgate %.1f frames/s = %.2f x real time (target >= 1.0); "
              "ffmpeg -c:v libx264 %.1f frames/s; ratio %.2f (target >= 0.9)" % (
                  count, ours, ours / RATE, theirs, ours / theirs))
        print("bitstream: modgate %d bytes, ffmpeg %d bytes for %d frames" % (our_bytes, their_bytes, count))
        print("peak RSS of modgate capture --transfer-syntax h264: 60 frames %.1f MiB, 1800 frames %.1f MiB; "
              "difference %.1f MiB (target < 8)" % (short_peak / 2 ** 20, long_peak / 2 ** 20,
                                                   (long_peak - short_peak) / 2 ** 20))
        uncompressed = WIDTH * HEIGHT * 3 * 1800
        print("one minute of 1080p30: %.1f MB as H.264, %.1f MB uncompressed: %.4f of it = 1/%.0f (target <= 1/50)"
              % (long_size / 1e6, uncompressed / 1e6, long_size / uncompressed, uncompressed / long_size))
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
