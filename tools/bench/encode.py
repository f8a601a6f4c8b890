"""Encoder benchmark: memory bound and throughput, from one run.

    python tools/bench/encode.py [--dir DIR] [--frames 350] [--no-fsync]

Prints
- the peak RSS of `modgate capture` (1920x1080 rgb8, simulated board) for
  10 frames and for 350 frames (about 2.1 GB); the two must differ by less
  than 8 MiB, because nothing in the encoder grows with the frame count;
- encoder throughput as a ratio to plain file writes of the same bytes to
  the same disk (target >= 0.9): the same pre-made frames are written once
  through the encoder and once with plain write() calls, each followed by
  fsync, alternating, best of 3.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from firmware.capture import write_frames  # noqa: E402
from firmware.dicom.encoder import ObjectEncoder  # noqa: E402
from hal.acq.sim import Pattern  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
NOW = (2026, 1, 1, 0, 0, 0, 0)


def peak_rss_of(args):
    """Run a command; return (exit status, its own peak RSS in bytes)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit("%s failed: %s" % (" ".join(args), proc.stderr.read().decode()))
    return usage.ru_maxrss * 1024  # Linux reports KiB


def capture_peak(frames, out_dir):
    args = [sys.executable, "-m", "tools.cli", "capture", "--frames", str(frames),
            "--size", "%dx%d" % (WIDTH, HEIGHT), "--pixel", "rgb8", "--out", out_dir]
    started = time.perf_counter()
    peak = peak_rss_of(args)
    elapsed = time.perf_counter() - started
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    return peak, size, elapsed


def timed_write(path, frames, count, through_encoder, fsync):
    started = time.perf_counter()
    with open(path, "wb") as out:
        if through_encoder:
            encoder = ObjectEncoder("video-endoscopic", HEIGHT, WIDTH, "rgb8", NOW)
            write_frames(out, encoder, (frames[k & 1] for k in range(count)))
        else:
            for k in range(count):
                out.write(frames[k & 1])
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    elapsed = time.perf_counter() - started
    size = os.path.getsize(path)
    os.remove(path)
    return size, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to write (default: a temporary folder)")
    parser.add_argument("--frames", type=int, default=350, help="frames of the large capture (default 350)")
    parser.add_argument("--throughput-frames", type=int, default=150)
    parser.add_argument("--no-fsync", action="store_true", help="measure the page cache, not the disk")
    args = parser.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="modgate-bench-")
    out_dir = os.path.join(base, "capture")
    os.makedirs(out_dir, exist_ok=True)

    small_peak, small_size, _ = capture_peak(10, out_dir)
    large_peak, large_size, large_time = capture_peak(args.frames, out_dir)
    diff = large_peak - small_peak
    print("peak RSS, modgate capture 1920x1080 rgb8:")
    print("  %4d frames: %7.1f MiB  (file %8.1f MB)" % (10, small_peak / 2 ** 20, small_size / 1e6))
    print("  %4d frames: %7.1f MiB  (file %8.1f MB, %.1f s, %.0f MB/s with frame generation)"
          % (args.frames, large_peak / 2 ** 20, large_size / 1e6, large_time, large_size / 1e6 / large_time))
    print("  difference: %.2f MiB (bar: < 8 MiB) -> %s" % (diff / 2 ** 20, "PASS" if abs(diff) < 8 * 2 ** 20 else "FAIL"))

    pattern = Pattern("rgb8", WIDTH, HEIGHT)
    frames = [pattern.frame(0), pattern.frame(1)]
    path = os.path.join(base, "throughput.bin")
    best = {True: None, False: None}
    for _ in range(3):
        for through_encoder in (False, True):
            size, elapsed = timed_write(path, frames, args.throughput_frames, through_encoder, not args.no_fsync)
            rate = size / elapsed
            if best[through_encoder] is None or rate > best[through_encoder]:
                best[through_encoder] = rate
    ratio = best[True] / best[False]
    print("throughput, %d frames 1920x1080 rgb8 (%s):" % (args.throughput_frames, "page cache" if args.no_fsync else "with fsync"))
    print("  plain writes: %7.0f MB/s" % (best[False] / 1e6))
    print("  encoder:      %7.0f MB/s" % (best[True] / 1e6))
    print("  ratio encoder/plain: %.3f (target >= 0.9) -> %s" % (ratio, "PASS" if ratio >= 0.9 else "FAIL"))
    if not args.dir:
        os.rmdir(out_dir)
        os.rmdir(base)


if __name__ == "__main__":
    main()
