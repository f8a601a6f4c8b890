"""Storage SCU benchmark: modgate store vs DCMTK storescu, from one run.

    python tools/bench/store.py [--dir DIR] [--runs 3] [--small 1000]

Both send to the same DCMTK `storescp --ignore +xa` on loopback (it receives and
answers but writes nothing), in alternating runs:
- one multi-frame object of 300+ MB (Video Endoscopic, 1920x1080 rgb8):
  median throughput of each, their ratio (target >= 1.0), and each one's
  peak RSS (target: modgate <= 32 MiB);
- 1000 small objects (64x64 VL Endoscopic) over one association: objects/s
  and the ratio (target >= 1.0).
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from firmware.capture import capture_object  # noqa: E402
from hal.acq.sim import SimBoard  # noqa: E402

NOW = (2026, 1, 1, 0, 0, 0, 0)


def dcmtk(name):
    path = "/usr/bin/" + name
    if not os.access(path, os.X_OK):
        raise SystemExit("%s not found; install Debian's dcmtk" % path)
    return path


def make_object(path, iod, width, height, frames, index=1):
    board = SimBoard(width, height, "rgb8")
    board.start()
    with open(path, "wb") as out:
        capture_object(out, board, frames, iod, NOW, {0x00200013: index})


def run_measured(args):
    """(seconds, peak RSS bytes) of a command; fails loudly."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed: %s" % (args[0], proc.stderr.read().decode()[-500:]))
    return elapsed, usage.ru_maxrss * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=51, help="1080p frames in the large object (51: 317 MB)")
    parser.add_argument("--small", type=int, default=1000)
    args = parser.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="modgate-store-bench-")
    big = os.path.join(base, "big.dcm")
    small_dir = os.path.join(base, "small")
    os.makedirs(small_dir, exist_ok=True)
    make_object(big, "video-endoscopic", 1920, 1080, args.frames)
    for i in range(args.small):
        make_object(os.path.join(small_dir, "%05d.dcm" % i), "vl-endoscopic", 64, 64, 1, i + 1)
    size = os.path.getsize(big)

    port = free_port()
    scp = subprocess.Popen([dcmtk("storescp"), "--ignore", "+xa", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    modgate = [sys.executable, "-m", "firmware.cli", "store", "127.0.0.1", str(port)]
    # -R: propose only the contexts the files need (else storescu offers a
    # fixed list of common classes that lacks Video Endoscopic).
    storescu = [dcmtk("storescu"), "-R", "127.0.0.1", str(port)]
    try:
        times = {"modgate": [], "storescu": []}
        rss = {"modgate": 0, "storescu": 0}
        for _ in range(args.runs):
            for name, cmd in (("storescu", storescu + [big]), ("modgate", modgate + [big])):
                elapsed, peak = run_measured(cmd)
                times[name].append(elapsed)
                rss[name] = max(rss[name], peak)
        mb_s = {k: size / statistics.median(v) / 1e6 for k, v in times.items()}
        ratio = mb_s["modgate"] / mb_s["storescu"]
        print("one %.0f MB object (1920x1080 rgb8, %d frames), median of %d alternating runs:" % (size / 1e6, args.frames, args.runs))
        print("  storescu: %7.1f MB/s  peak RSS %6.1f MiB" % (mb_s["storescu"], rss["storescu"] / 2 ** 20))
        print("  modgate:  %7.1f MB/s  peak RSS %6.1f MiB (target <= 32 MiB) -> %s"
              % (mb_s["modgate"], rss["modgate"] / 2 ** 20, "PASS" if rss["modgate"] <= 32 * 2 ** 20 else "FAIL"))
        print("  throughput ratio modgate/storescu: %.2f (target >= 1.0) -> %s" % (ratio, "PASS" if ratio >= 1.0 else "FAIL"))

        small = {"modgate": [], "storescu": []}
        for _ in range(args.runs):
            for name, cmd in (("storescu", storescu + ["+sd", small_dir]), ("modgate", modgate + [small_dir])):
                small[name].append(run_measured(cmd)[0])
        rate = {k: args.small / statistics.median(v) for k, v in small.items()}
        ratio = rate["modgate"] / rate["storescu"]
        print("%d small objects (64x64) over one association, median of %d runs:" % (args.small, args.runs))
        print("  storescu: %7.0f objects/s" % rate["storescu"])
        print("  modgate:  %7.0f objects/s" % rate["modgate"])
        print("  ratio modgate/storescu: %.2f (target >= 1.0) -> %s" % (ratio, "PASS" if ratio >= 1.0 else "FAIL"))
    finally:
        scp.terminate()
        scp.wait()
        if not args.dir:
            shutil.rmtree(base)


if __name__ == "__main__":
    main()
