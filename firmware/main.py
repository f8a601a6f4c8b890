"""The box's entry: the gateway until stopped.

    python -m firmware.main [--config FILE] [--console [DEVICE]]

is what the box's init runs (tools/image/init.py), and what `modgate run`
(tools/cli.py) calls on a host: both go through run() below. It wires a
board, a configuration and the gateway, so it is the one module of
firmware/ besides firmware/compat that may use the operating system
directly (argparse, os, signal): CPython on Linux only. A MicroPython board
brings its own entry (tools/mpy_deploy.py leaves this one out).

Exit status: 0 stopped by a signal or done; 1 it cannot work at all (the
reason is logged); 2 a configuration that cannot apply and no console to
fix it from, or a bad argument; REBOOT_STATUS and POWEROFF_STATUS the
console's reboot and poweroff, which the box's init carries out.
"""

import argparse
import os
import signal
import sys

from firmware import __version__

# The gateway, the board and the console are imported where they are used:
# every other `modgate` subcommand imports this module for add_arguments()
# and should not load the whole gateway for it.

DEFAULT_CONFIG = "modgate.json"
REBOOT_STATUS = 3  # the console asked for a reboot
POWEROFF_STATUS = 4  # ... and for a power-off


def log_line(message):
    sys.stderr.write("modgate: %s\n" % message)


def add_arguments(parser):
    """run()'s arguments, on this module's own parser or on `modgate run`'s."""
    parser.add_argument("--config", metavar="FILE",
                        help="configuration (JSON); default: ./modgate.json if present, else the defaults")
    parser.add_argument("--console", nargs="?", const="board", metavar="DEVICE",
                        help="serve the console: on the board's UART (no value), on a new pty ('pty'), "
                             "or on a tty path")


def run(args):
    """The gateway until stopped (SIGTERM or SIGINT): the recorder commits
    the clip it is writing, the sender finishes the C-STORE under way. The
    configuration comes from --config, else ./modgate.json if present; with
    none the box records nothing until one is saved from the console. The
    console saves to the same file. A configuration that cannot apply stops
    start-up with the key and the reason (a ValueError, which the caller
    prints as one line, exit status 2), unless there is a console to fix it
    from: then the box starts on the defaults, recording off, and the reason
    is an alarm. Returns the exit status."""
    import board
    from firmware import config
    from firmware.gateway import Gateway, check_applicable

    path = args.config or DEFAULT_CONFIG
    exists = os.path.exists(path)
    cfg, problem = config.salvage(path if args.config or exists else None)
    box = board.load(cfg["board"])
    if problem is None:
        try:
            check_applicable(cfg, box)
        except ValueError as err:
            problem = err
    if problem is not None and not args.console:
        raise problem
    configured = exists and problem is None
    # A configuration that cannot apply opens no spool (where it is may be
    # what is wrong): nothing is recorded or sent until a save applies one.
    gateway = Gateway(cfg, box, log=log_line, configured=configured, keep_going=bool(args.console),
                      open_spool=problem is None)
    if problem is not None:
        gateway.alarms.set("config", "%s not applied: %s" % (path, problem),
                           "nothing is recorded or sent: fix the key on the console and save")
    elif not configured:
        log_line("no configuration (%s): recording off until one is saved from the console" % path)
    signal.signal(signal.SIGTERM, lambda *_: gateway.stop())
    signal.signal(signal.SIGINT, lambda *_: gateway.stop())
    # Clip mode "command": SIGUSR1 starts recording, SIGUSR2 stops it.
    signal.signal(signal.SIGUSR1, lambda *_: gateway.start_recording())
    signal.signal(signal.SIGUSR2, lambda *_: gateway.stop_recording())
    console = None
    if args.console:
        console = start_console(args.console, gateway, box, path)
    log_line("running on board %s; spool %s; PACS %s@%s:%d" % (
        box.name, gateway.storage.root if gateway.storage else "(none)", cfg["pacs.ae_title"], cfg["pacs.host"],
        cfg["pacs.port"]))
    # A run with a clip count ends once those clips are recorded and sent.
    gateway.run(until_sent=cfg["clip.count"] > 0 and configured)
    if console is not None:
        console.join(5)
    spool = gateway.spool
    log_line("stopped: %d clips recorded, %d stored, %s waiting, %s quarantined" % (
        len(gateway.clips), gateway.stored, len(gateway.waiting()) if spool else "-",
        len(spool.quarantined()) if spool else "-"))
    if gateway.fatal:
        log_line("cannot work: %s" % gateway.fatal)
        return 1
    if gateway.poweroff_requested:
        log_line("power-off requested from the console")
        return POWEROFF_STATUS
    if gateway.reboot_requested:
        log_line("reboot requested from the console")
        return REBOOT_STATUS
    return 0


def start_console(where, gateway, box, config_path):
    """The serial console in a thread: on the board's console UART
    ("board"), a new pty whose path is logged ("pty", as QEMU's -serial pty),
    or a tty device path."""
    import board
    from firmware import config
    from firmware.console.system import ConsoleSystem
    from firmware.compat.threads import Thread
    from firmware.console import PasswordFile, serve
    from firmware.console.shell import Console, Settings
    from hal.storage import PosixStorage

    if where == "board":
        uart = box.open_console(timeout_s=0.2)
    elif where == "pty":
        from hal.uart import PtyPair

        pair = PtyPair(timeout_s=0.2)
        uart = pair.master
        log_line("console on %s" % pair.path)
    else:
        from hal.uart import TtyUART

        uart = TtyUART(where, 115200, timeout_s=0.2)
    try:
        nic = box.open_nic()
    except OSError as err:
        log_line("console: no NIC status: %s" % err)
        nic = None
    system = ConsoleSystem(gateway, nic, load_board=board.load)
    folder = os.path.dirname(os.path.abspath(config_path))
    store = PosixStorage(folder)
    name = os.path.basename(config_path)

    def persist(values):
        # Everything that can be checked is, before anything is written: a
        # saved configuration that cannot apply would stop the next start.
        # A change of the patient or exam alone (exam end) needs no more
        # than its keys' own checks: an exam must end even if, say, a CA
        # file has gone since the last save.
        if any(values[key] != gateway.cfg[key] for key in values if key not in config.EXAM_KEYS):
            system.check(values)
        config.save(store, name, values)
        system.apply(values)

    shell = Console(Settings(gateway.cfg, persist), system, PasswordFile(store),
                    banner="modgate %s console, board %s" % (__version__, box.name))
    stopped = gateway.stopping
    thread = Thread(target=serve, args=(uart, shell, gateway.clock, gateway.cfg["console.idle_logout"], stopped),
                    name="console", daemon=True)
    thread.start()
    return thread


def main(argv=None):
    parser = argparse.ArgumentParser(prog="modgate run", description="modgate %s: the gateway until stopped"
                                     % __version__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as err:
        # As `modgate run` says it: one line, the key and the reason.
        parser.exit(2, "modgate run: error: %s\n" % err)


if __name__ == "__main__":
    sys.exit(main())
