"""Power-cut test: `modgate run` killed with SIGKILL at random moments, again
and again, then restarted to drain its spool. Every clip it reported as
queued must arrive at the Storage SCP, and everything that arrives must be a
whole clip, pixel for pixel (no partial object is ever sent).

    python tools/bench/crash.py [--iterations 200] [--seed N] [--dir DIR]

prints "lost L, corrupt C" with the counts (both must be 0). The test suite
runs the same loop with fewer iterations (tests/test_gateway.py).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from hal.acq.sim import Pattern  # noqa: E402
from tools.receiver import Receiver  # noqa: E402

WIDTH, HEIGHT, FRAMES = 64, 48, 5
QUEUED = re.compile(r"queued as (\S+), SOP Instance UID (\S+)")


def gateway_config(folder, receiver, record=True):
    return {
        "board": "host",
        "acquisition": {"width": WIDTH, "height": HEIGHT, "pixel": "rgb8", "rate": [60, 1], "paced": True},
        "clip": {"mode": "frames" if record else "command", "frames": FRAMES, "iod": "video-endoscopic",
                 "transfer_syntax": "explicit"},  # checked pixel for pixel on arrival
        "pacs": {"host": "127.0.0.1", "port": receiver.port, "ae_title": receiver.ae_title,
                 "idle_release": 0.5, "connect_timeout": 2, "acse_timeout": 5, "dimse_timeout": 10},
        "spool": {"root": os.path.join(folder, "spool"), "max_bytes": 256 * 1024 * 1024, "min_free_bytes": 0,
                  "backoff_initial": 0.05, "backoff_max": 0.5},
    }


def start_gateway(folder, receiver, record, log_path):
    path = os.path.join(folder, "record.json" if record else "drain.json")
    with open(path, "w") as f:
        json.dump(gateway_config(folder, receiver, record), f)
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "firmware.main", "--config", path],
                            cwd=ROOT, stdout=log, stderr=log)
    log.close()
    return proc


def check_received(path, pattern):
    """Problems with one received object (empty: it is a whole clip)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        frames = int(ds.NumberOfFrames)
        pixels = ds.PixelData
    except Exception as err:  # anything unreadable is corrupt
        return ["unreadable: %s" % err]
    if frames != FRAMES:
        return ["%d frames, a clip has %d" % (frames, FRAMES)]
    k0 = pixels[0]  # rgb8: R at (0, 0) of frame k is k mod 256
    expected = b"".join(pattern.frame(k0 + i) for i in range(FRAMES))
    if pixels[: len(expected)] != expected:
        return ["pixels differ from frames %d..%d of the pattern" % (k0, k0 + FRAMES - 1)]
    return []


def crash_loop(folder, iterations, seed, log=None):
    log = log or (lambda message: None)
    rng = random.Random(seed)
    receiver = Receiver(os.path.join(folder, "received")).start()
    queued = {}
    log_path = os.path.join(folder, "gateway.log")
    try:
        for i in range(iterations):
            proc = start_gateway(folder, receiver, True, log_path)
            time.sleep(rng.uniform(0.05, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Restart, record nothing, and let the sender drain the queue.
        proc = start_gateway(folder, receiver, False, log_path)
        queue = os.path.join(folder, "spool", "queue")
        deadline = time.monotonic() + 120
        time.sleep(1.0)
        while time.monotonic() < deadline and os.listdir(queue):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        receiver.stop()
    with open(log_path, "rb") as f:
        for line in f.read().decode("utf-8", "replace").splitlines():
            found = QUEUED.search(line)
            if found:
                queued[found.group(2)] = found.group(1)
    arrived = receiver.files()
    pattern = Pattern("rgb8", WIDTH, HEIGHT)
    corrupt = {}
    for uid, path in arrived.items():
        problems = check_received(path, pattern)
        if problems:
            corrupt[uid] = problems
    lost = sorted(uid for uid in queued if uid not in arrived)
    spool = os.path.join(folder, "spool")
    leftover = {name: os.listdir(os.path.join(spool, name)) for name in ("tmp", "queue", "quarantine")}
    return {
        "iterations": iterations,
        "queued": len(queued),
        "received": len(arrived),
        "received_total": receiver.received,
        "lost": lost,
        "corrupt": corrupt,
        "leftover": leftover,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--dir")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="modgate-crash-")
    started = time.monotonic()
    result = crash_loop(folder, args.iterations, args.seed)
    print("crash: %d kill -9 iterations (seed %d) in %.0f s; %d clips reported queued, %d objects received "
          "(%d C-STOREs: %d sent again after a kill, same SOP Instance UID)"
          % (result["iterations"], args.seed, time.monotonic() - started, result["queued"], result["received"],
             result["received_total"], result["received_total"] - result["received"]))
    print("spool after the drain: %s" % ", ".join("%s %d" % (k, len(v)) for k, v in sorted(result["leftover"].items())))
    print("lost %d, corrupt %d" % (len(result["lost"]), len(result["corrupt"])))
    for uid in result["lost"]:
        print("  lost %s" % uid)
    for uid, problems in result["corrupt"].items():
        print("  corrupt %s: %s" % (uid, "; ".join(problems)))
    if not args.dir:
        shutil.rmtree(folder)
    return 1 if result["lost"] or result["corrupt"] or any(result["leftover"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
