"""A console session as a transcript: the same bytes typed into the shell
on CPython and on MicroPython must give the same output. Prints one line per
step: the step's number, the output's length and its SHA-256."""

import binascii
import hashlib

from firmware import config
from firmware.compat.crypto import make_password_record
from firmware.console.shell import Console, Settings


class Memory:
    """The password record and the lockout, kept in memory."""

    def __init__(self, record):
        self.record = record
        self.kept = (0, 0)

    def get(self):
        return self.record

    def set(self, record):
        self.record = record

    def lockout(self):
        return self.kept

    def set_lockout(self, failures, locked_ms):
        self.kept = (failures, locked_ms)


class System:
    """The box as the shell sees it, recording what it is asked to do."""

    def __init__(self):
        self.calls = []
        self.applied = None

    def status(self):
        # A PACS's Implementation Version Name, as a peer may send it.
        return ["board host", "peer   \x1b[2J\x1b[HALARM: FAKE\r\nALARM forged \x9b31m"]

    def echo(self):
        return "C-ECHO 0000"

    def record(self, start):
        self.calls.append(("record", start))
        return "recording" if start else "stopped"

    def stream(self, start):
        return "error: not available"

    def queue(self, args):
        return ["the spool is empty"]

    def log(self, n):
        return ["line %d" % i for i in range(n)]

    def apply(self, values):
        self.applied = values

    def reboot(self):
        self.calls.append(("reboot",))

    def poweroff(self):
        self.calls.append(("poweroff",))
        return "powering off"

    def new_study(self):
        self.calls.append(("new_study",))
        return "the next clip starts a new study"

    def procedure_end(self, status, reason, quiet=False):
        self.calls.append(("procedure_end", status, reason))
        return None if quiet else "error: no procedure under way"

    def procedure_retry(self):
        self.calls.append(("procedure_retry",))
        return "0 MPPS messages back in the queue"

    def procedure_lines(self):
        return ["no procedure under way: worklist select N, or procedure new"]


STEPS = [
    b"\r", b"wrong-pw\r", b"\r", b"s3cret-pw\r", b"help\r", b"show pacs\r", b"set pacs.port 11112\r",
    b"set pacs.port 70000\r", b"set pacs.host 2001:db8::1\r", b"set patient.name Doe^Jane\r",
    b"get pacs.\t", b"\x03", b"sta\t\r", b"set acquisition.rate [25, 1]\r", b"save\r", b"show\r",
    b"abc\x08\x08\x15\x1b[A\x1b[B\x1b[2J\r", b"record start\r", b"log 3\r", b"bogus\r",
    b"status\r", b"set study.description Gastroskopie M\xc3\xbcller \xe6\xbc\xa2\xe5\xad\x97\x7f\x7f\r",
    b"set study.description M\xfcller\xe0\x80\r", b"e\xcc\x81\xf0\x9f\x98\x80\x7f\x7f\x08\x15", b"exam end\r",
    b"passwd\r", b"\x03", b"logout\r",
]


def transcript():
    saved = []
    record = make_password_record("s3cret-pw", salt=b"0123456789abcdef", iterations=10)
    console = Console(Settings(config.defaults(), saved.append), System(), Memory(record), banner="test")
    now = 0
    for i, step in enumerate(STEPS):
        now += 10
        yield i, console.feed(step, now)


if __name__ == "__main__":
    for i, out in transcript():
        print(i, len(out), binascii.hexlify(hashlib.sha256(out).digest()).decode())
