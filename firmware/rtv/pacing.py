"""ST 2110-21 sender timing, sans-I/O: when each burst of a frame's
datagrams may leave, and the network compatibility check a receiver runs on
the arrival times.

modgate claims the wide sender type (TP=2110TPW in the SDP), with a linear
schedule: the N datagrams of a frame are spread evenly over the active part
of the frame period, one every T_RS = T_FRAME * R_ACTIVE / N. The network
compatibility model is a leaky bucket that drains one packet every
T_RS / beta (beta = 1.1); a conforming sender never lets it hold more than
C_MAX packets, C_MAX = max(16, floor(N / (21600 * T_FRAME))) for a wide
sender. A burst of B <= C_MAX datagrams (one sendmsg with UDP generic
segmentation offload) fills the bucket by B at once. The sender runs the
same bucket (Bucket) over its own sends: a burst leaves on schedule, or
early when a sleep woke early, as long as the bucket has room for it, else
it waits until it has. With B = C_MAX / 2 the schedule's jitter has half
the bucket to itself; a sender that fell behind catches up at beta times
the nominal rate, never faster.

The formulas are ST 2110-21's (the network compatibility model and the
wide-sender C_MAX); R_ACTIVE = 1080/1125 is its value for the 1125-line
raster, used here for every frame size: it leaves 4% of each period for
reading and packing the next frame.
"""

BETA = 1.1
R_ACTIVE = (1080, 1125)
CMAX_MIN_WIDE = 16
NS = 1000000000


def cmax_wide(npackets, rate):
    """C_MAX of a wide sender: max(16, floor(N / (21600 * T_FRAME))),
    T_FRAME = den / num seconds."""
    return max(CMAX_MIN_WIDE, npackets * rate[0] // (21600 * rate[1]))


def trs_ns(npackets, rate):
    """T_RS in ns (a float): the nominal spacing of the datagrams."""
    return NS * rate[1] * R_ACTIVE[0] / (rate[0] * R_ACTIVE[1] * npackets)


class Schedule:
    """The burst plan of one flow: npackets datagrams a frame at rate.
    burst: datagrams per burst, at most C_MAX (default C_MAX // 2, which
    leaves half the bucket for the scheduler's own jitter)."""

    def __init__(self, npackets, rate, burst=None):
        if npackets < 1:
            raise ValueError("a frame needs at least one datagram")
        self.npackets = npackets
        self.rate = rate
        self.cmax = cmax_wide(npackets, rate)
        self.burst = min(burst or self.cmax // 2, self.cmax)
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self.trs = trs_ns(npackets, rate)
        self.frame_ns = NS * rate[1] // rate[0]

    def offset_ns(self, index):
        """When datagram index of a frame is due, from the frame's start."""
        return int(index * self.trs)

    def bucket(self):
        return Bucket(self.trs, self.cmax)


class Bucket:
    """The network compatibility model's leaky bucket: it drains one packet
    every trs / beta ns; add() puts packets in at a time."""

    def __init__(self, trs, cmax, beta=BETA):
        self.drain = trs / beta
        self.cmax = cmax
        self.level = 0.0
        self.peak = 0.0
        self._t = None

    def _drained(self, now):
        if self._t is None:
            return 0.0
        level = self.level - (now - self._t) / self.drain
        return level if level > 0 else 0.0

    def wait_ns(self, now, count):
        """How long until count more packets fit under C_MAX (0: now)."""
        over = self._drained(now) + count - self.cmax
        return int(over * self.drain) + 1 if over > 0 else 0

    def add(self, now, count=1):
        self.level = self._drained(now) + count
        self._t = now
        if self.level > self.peak:
            self.peak = self.level


def bucket_peak(arrivals_ns, trs, beta=BETA):
    """The network compatibility model run over arrival times (ns, in
    order): the most packets the bucket held (C_INST's peak)."""
    bucket = Bucket(trs, 0, beta)
    for t in arrivals_ns:
        bucket.add(t)
    return bucket.peak
