"""Storage SCU benchmark: modgate store vs DCMTK storescu, from one run.

    python tools/bench/store.py [--dir DIR] [--runs 3] [--small 1000]

Both send to the same DCMTK `storescp --ignore +xa` on loopback (it receives and
answers but writes nothing), in alternating runs. DCMTK as Debian builds it
leaves Nagle's algorithm on unless TCP_NODELAY=1 is in the environment; with it
on, storescp's two-part C-STORE-RSP stalls every object on a delayed ACK
(about 11 objects/s). The anchor is DCMTK at its best: storescp and storescu
both run with TCP_NODELAY=1. (modgate asks for quick ACKs itself, so it does
not stall on a Nagle peer either.)
- one multi-frame object of 300+ MB (Video Endoscopic, 1920x1080 rgb8):
  median throughput of each, their ratio (target >= 1.0), each one's CPU
  time (user + sys) per GB sent and their ratio (target: modgate's lower),
  and each one's peak RSS (target: modgate <= 32 MiB). Both tools are
  measured alike, as child processes: wait4's rusage for CPU, GNU time for
  the peak RSS. On loopback the kernel's work for the receiving socket is
  charged to whichever side's system call runs it, so the sender's CPU
  moves with how it sends; storescp's own CPU is what paces both tools;
- 1000 small objects (64x64 VL Endoscopic) over one association: objects/s
  on the association (the whole run less a one-object run) and for the whole
  command, and the ratio (target >= 1.0).
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


def require_time():
    if not os.access("/usr/bin/time", os.X_OK):
        raise SystemExit("/usr/bin/time not found; install Debian's time")


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


DCMTK_ENV = dict(os.environ, TCP_NODELAY="1")
# modgate runs from byte code, as on a box (where it is frozen or .mpy): the
# bench compiles it once and lets Python use the .pyc files even where the
# environment says PYTHONDONTWRITEBYTECODE.
MODGATE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_measured(args, env=None):
    """(seconds, peak RSS bytes, CPU seconds user + sys) of a command;
    fails loudly.

    The peak RSS comes from GNU time, which forks the command from its own
    small process: a child forked (or vforked) straight from this Python
    process would carry this process's high-water mark in ru_maxrss. The
    CPU time is the rusage that wait4(2) gives for GNU time: its own (about
    a millisecond, the same for every command) and its waited-for child's,
    in microseconds (GNU time's own %U/%S print only hundredths). Every
    tool is measured this way, as a child process.
    """
    with tempfile.NamedTemporaryFile("r") as report, tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-o", report.name, "-f", "%M"] + args,
                                stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            output.seek(0)
            text = output.read().decode(errors="replace")
            raise SystemExit("%s failed (exit %d): %s" % (" ".join(args[:4]), proc.returncode,
                "\n".join(l for l in text.splitlines() if "success" not in l)[-2000:]))
        return elapsed, int(report.read().split()[-1]) * 1024, usage.ru_utime + usage.ru_stime


def cpu_seconds(pid):
    """CPU time a (single-threaded) process has had, from
    /proc/PID/schedstat in nanoseconds; None where there is none."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report_big(times, cpu, rss, size, args, receiver):
    """Throughput and CPU (user + sys) per GB of the large object, each
    tool's median and spread, on the association (a run less the median
    one-object run) and for the whole command, and modgate's ratios."""
    med = {name: {case: statistics.median(v) for case, v in cases.items()} for name, cases in times.items()}
    cpu_med = {name: {case: statistics.median(v) for case, v in cases.items()} for name, cases in cpu.items()}

    def mb_s(name, seconds):
        return size / max(1e-6, seconds - med[name]["one"]) / 1e6

    def cpu_gb(name, seconds):
        return max(0.0, seconds - cpu_med[name]["one"]) / (size / 1e9)

    print("one %.0f MB object (1920x1080 rgb8, %d frames), median [min-max] of %d alternating runs:"
          % (size / 1e6, args.frames, args.runs))
    tp, per_gb = {}, {}
    for name in ("storescu", "modgate"):
        tp[name] = mb_s(name, med[name]["big"])
        per_gb[name] = cpu_gb(name, cpu_med[name]["big"])
        runs_tp = [mb_s(name, t) for t in times[name]["big"]]
        runs_cpu = [cpu_gb(name, c) for c in cpu[name]["big"]]
        print("  %-9s %7.1f MB/s [%.1f-%.1f] on the association, %7.1f MB/s whole command; "
              "CPU %.3f s/GB [%.3f-%.3f] on the association, %.3f s/GB whole command; peak RSS %5.1f MiB"
              % (name + ":", tp[name], min(runs_tp), max(runs_tp), size / med[name]["big"] / 1e6,
                 per_gb[name], min(runs_cpu), max(runs_cpu), cpu_med[name]["big"] / (size / 1e9),
                 rss[name] / 2 ** 20))
    if receiver["modgate"] and receiver["storescu"]:
        print("  storescp's own CPU per GB received (it sets the pace): from storescu %.3f s, from modgate %.3f s"
              % tuple(statistics.median(receiver[name]) / (size / 1e9) for name in ("storescu", "modgate")))
    print("  peak RSS modgate %.1f MiB (target <= 32 MiB) -> %s"
          % (rss["modgate"] / 2 ** 20, "PASS" if rss["modgate"] <= 32 * 2 ** 20 else "FAIL"))
    ratio = tp["modgate"] / tp["storescu"]
    print("  throughput ratio modgate/storescu on the association: %.2f (target >= 1.0) -> %s; whole command: %.2f"
          % (ratio, "PASS" if ratio >= 1.0 else "FAIL", med["storescu"]["big"] / med["modgate"]["big"]))
    ratio = per_gb["modgate"] / max(1e-9, per_gb["storescu"])
    whole = cpu_med["modgate"]["big"] / max(1e-9, cpu_med["storescu"]["big"])
    print("  CPU per GB ratio modgate/storescu on the association: %.2f (target < 1.0) -> %s; whole command: %.2f"
          % (ratio, "PASS" if ratio < 1.0 else "FAIL", whole))


def report_small(times, args):
    med = {name: {case: statistics.median(v) for case, v in cases.items()} for name, cases in times.items()}
    steady = {name: (args.small - 1) / max(1e-6, m["many"] - m["one"]) for name, m in med.items()}
    rate = {name: args.small / m["many"] for name, m in med.items()}
    ratio = steady["modgate"] / steady["storescu"]
    print("%d small objects (64x64) over one association, median of %d runs:" % (args.small, args.runs))
    for name in ("storescu", "modgate"):
        print("  %-9s %7.0f objects/s on the association, %7.0f objects/s whole command (one object alone: %.2f s)"
              % (name + ":", steady[name], rate[name], med[name]["one"]))
    print("  ratio modgate/storescu on the association: %.2f (target >= 1.0) -> %s; whole command: %.2f"
          % (ratio, "PASS" if ratio >= 1.0 else "FAIL", rate["modgate"] / rate["storescu"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=51, help="1080p frames in the large object (51: 317 MB)")
    parser.add_argument("--small", type=int, default=1000, help="small objects (0: only the large one)")
    args = parser.parse_args()
    require_time()
    base = args.dir or tempfile.mkdtemp(prefix="modgate-store-bench-")
    big = os.path.join(base, "big.dcm")
    small_dir = os.path.join(base, "small")
    os.makedirs(small_dir, exist_ok=True)
    make_object(big, "video-endoscopic", 1920, 1080, args.frames)
    for i in range(max(1, args.small)):
        make_object(os.path.join(small_dir, "%05d.dcm" % i), "vl-endoscopic", 64, 64, 1, i + 1)
    size = os.path.getsize(big)
    root = os.path.dirname(os.path.dirname(HERE))
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(root, "firmware"), os.path.join(root, "hal")],
                   check=True, env=MODGATE_ENV)

    port = free_port()
    scp = subprocess.Popen([dcmtk("storescp"), "--ignore", "+xa", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=DCMTK_ENV)
    time.sleep(0.5)
    modgate = [sys.executable, "-m", "tools.cli", "store", "127.0.0.1", str(port)]
    # -R: propose only the contexts the files need (else storescu offers a
    # fixed list of common classes that lacks Video Endoscopic).
    storescu = [dcmtk("storescu"), "-R", "127.0.0.1", str(port)]
    first = os.path.join(small_dir, sorted(os.listdir(small_dir))[0])
    cmds = {
        "storescu": {"big": storescu + [big], "one": storescu + [first]},
        "modgate": {"big": modgate + [big], "one": modgate + [first]},
    }
    if args.small > 1:
        cmds["storescu"]["many"] = storescu + ["+sd", small_dir]
        cmds["modgate"]["many"] = modgate + [small_dir]
    try:
        # Alternating runs of each tool and case. Every tool also sends one
        # small object alone: its time and CPU (process start-up, association
        # set-up, one C-STORE, release) taken from a run leave what the
        # association itself took. That is what matters for a gateway, whose
        # process runs for months; the whole-command figures are printed
        # beside it.
        times = {name: {case: [] for case in cases} for name, cases in cmds.items()}
        cpu = {name: {case: [] for case in cases} for name, cases in cmds.items()}
        rss = {"modgate": 0, "storescu": 0}
        receiver = {"modgate": [], "storescu": []}  # storescp's CPU seconds per large object
        for _ in range(args.runs):
            for name, cases in cmds.items():
                env = DCMTK_ENV if name == "storescu" else MODGATE_ENV
                for case, cmd in cases.items():
                    before = cpu_seconds(scp.pid)
                    elapsed, peak, used = run_measured(cmd, env)
                    if case == "big" and before is not None:
                        receiver[name].append(cpu_seconds(scp.pid) - before)
                    times[name][case].append(elapsed)
                    cpu[name][case].append(used)
                    if case == "big":
                        rss[name] = max(rss[name], peak)
        report_big(times, cpu, rss, size, args, receiver)
        if args.small > 1:
            report_small(times, args)
    finally:
        scp.terminate()
        scp.wait()
        if not args.dir:
            shutil.rmtree(base)


if __name__ == "__main__":
    main()
