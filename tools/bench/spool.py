"""Memory of `modgate run` while 1 GB of clips goes through its spool.

    python tools/bench/spool.py [--gigabytes 1] [--dir DIR]

The gateway records 1280x720 rgb8 clips of 30 frames (83 MB each) from the
simulated board as fast as it can and sends them to DCMTK's
`storescp --ignore` on loopback. Its VmRSS and VmHWM (peak) are sampled from
/proc every 0.1 s; the peak after the first clip was stored and at the end
are printed with their difference (target: flat, i.e. within a few MiB).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

WIDTH, HEIGHT, FRAMES = 1280, 720, 30
CLIP_BYTES = WIDTH * HEIGHT * 3 * FRAMES


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid):
    """(VmRSS, VmHWM) in bytes from /proc."""
    values = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _ = line.split()
                values[key] = int(amount) * 1024
    return values["VmRSS:"], values["VmHWM:"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--dir")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="modgate-spool-bench-")
    clips = int(args.gigabytes * 1e9 // CLIP_BYTES) + 1
    port = free_port()
    scp = subprocess.Popen(["/usr/bin/storescp", "--ignore", "+xa", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, TCP_NODELAY="1"))
    cfg_path = os.path.join(folder, "bench.json")
    with open(cfg_path, "w") as f:
        json.dump({
            "acquisition": {"width": WIDTH, "height": HEIGHT, "pixel": "rgb8", "paced": False},
            "clip": {"frames": FRAMES, "count": clips},
            "pacs": {"port": port},
            "spool": {"root": os.path.join(folder, "spool"), "max_bytes": 4 * 1024 ** 3},
        }, f)
    log_path = os.path.join(folder, "gateway.log")
    log = open(log_path, "wb")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.main", "--config", cfg_path],
                            cwd=ROOT, stdout=log, stderr=log)
    samples = []  # (stored clips, rss, hwm)
    try:
        stored = 0
        while stored < clips and proc.poll() is None and time.monotonic() - started < 1800:
            time.sleep(0.1)
            with open(log_path, "rb") as f:
                stored = len(re.findall(rb"sender: \S+ stored", f.read()))
            samples.append((stored,) + memory(proc.pid))
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        log.close()
        if proc.poll() is None:
            proc.kill()
        scp.terminate()
        scp.wait()
    if stored < clips:
        raise SystemExit("only %d of %d clips stored; see %s" % (stored, clips, log_path))
    first = [s for s in samples if s[0] >= 1][0]
    last = samples[-1]
    print("modgate run: %d clips of %d MB (%.2f GB) recorded, spooled and stored in %.0f s (%.0f MB/s through the spool)"
          % (clips, CLIP_BYTES // 10 ** 6, clips * CLIP_BYTES / 1e9, elapsed, clips * CLIP_BYTES / 1e6 / elapsed))
    print("  after the first clip was stored: RSS %.1f MiB, peak %.1f MiB" % (first[1] / 2 ** 20, first[2] / 2 ** 20))
    print("  after all of them:               RSS %.1f MiB, peak %.1f MiB" % (last[1] / 2 ** 20, last[2] / 2 ** 20))
    growth = (last[2] - first[2]) / 2 ** 20
    print("  peak RSS growth over %.2f GB: %+.1f MiB (target: flat, < 4 MiB) -> %s"
          % (clips * CLIP_BYTES / 1e9, growth, "PASS" if growth < 4 else "FAIL"))
    if not args.dir:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
