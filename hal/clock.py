"""Clocks: monotonic (for intervals), wall (UTC, for DICOM dates and times)
and, where the board has one, a PTP hardware clock (PHC) for media time.

    clock.monotonic_ns()   nanoseconds, never goes back
    clock.sleep_ns(n)
    clock.wall_utc()       (year, month, day, hour, minute, second, microsecond)
    clock.phc_ns()         the PHC's time in ns (TAI as ptp4l keeps it), or None
    clock.tai_ns()         TAI in ns for media timestamps (PS3.22, ST 2110-10):
                           the PHC when there is one, else the system clock
                           (UTC) plus the TAI-UTC offset
    clock.realtime_thread() let the calling thread's sleeps end on time: run
                           it at the board's real-time priority (SCHED_FIFO),
                           where the board names one; None when granted, else
                           why not
"""

import os
import time

# Linux dynamic POSIX clocks (clock_gettime(2), "Dynamic clocks"): a PHC
# device's clock id is made from its open file descriptor.
_CLOCKFD = 3

# TAI - UTC in seconds since 1 January 2017 (IERS Bulletin C; no leap
# second since). The same fact as firmware.rtv.nmos.TAI_UTC_OFFSET, which
# the protocol core uses the other way round; hal does not import firmware.
TAI_UTC_OFFSET = 37


def _fd_to_clockid(fd):
    return ((~fd) << 3) | _CLOCKFD


class SystemClock:
    """The host's clocks; phc: a PTP hardware clock device such as
    /dev/ptp0, or None; realtime_priority: the SCHED_FIFO priority (1-99)
    of a thread that paces media (realtime_thread), or None."""

    def __init__(self, phc=None, realtime_priority=None):
        self.phc = phc
        self.realtime_priority = realtime_priority
        self._phc_fd = None

    def realtime_thread(self):
        """The calling thread at SCHED_FIFO realtime_priority
        (sched_setscheduler(2): pid 0 is the calling thread). A paced
        sender that sleeps until each packet group is due otherwise wakes
        whenever the scheduler gets round to it: milliseconds late, now and
        then, on a loaded machine. The kernel's RT throttling
        (sched_rt_runtime_us) still leaves other tasks 5% of each CPU.
        None when granted; else why not (no priority set, EPERM without
        CAP_SYS_NICE)."""
        if not self.realtime_priority:
            return "the board sets no real-time priority"
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
        except (OSError, AttributeError) as err:
            return "SCHED_FIFO %d refused: %s" % (self.realtime_priority, getattr(err, "strerror", None) or err)
        return None

    def monotonic_ns(self):
        return time.monotonic_ns()

    def sleep_ns(self, n):
        if n > 0:
            time.sleep(n / 1e9)

    def wall_utc(self):
        ns = time.time_ns()
        t = time.gmtime(ns // 1000000000)
        return (t[0], t[1], t[2], t[3], t[4], t[5], (ns // 1000) % 1000000)

    def phc_ns(self):
        if self.phc is None:
            return None
        if self._phc_fd is None:
            self._phc_fd = os.open(self.phc, os.O_RDONLY)
        return time.clock_gettime_ns(_fd_to_clockid(self._phc_fd))

    def tai_ns(self):
        phc = self.phc_ns()
        if phc is not None:
            return phc
        return time.time_ns() + TAI_UTC_OFFSET * 1000000000

    def close(self):
        if self._phc_fd is not None:
            os.close(self._phc_fd)
            self._phc_fd = None
