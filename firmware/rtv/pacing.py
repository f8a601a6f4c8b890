"""ST 2110-21 timing, sans-I/O: where a frame's packets belong on the media
clock, when the sender lets them go, and the two traffic models a receiver
runs over their arrival times. Section numbers are ST 2110-21:2022's.

modgate is a wide sender (Type W, 7.1.4; TP=2110TPW in the SDP):

- Frame slots, 6.2. Frame N of a flow belongs to the instant N x T_FRAME
  counted from the SMPTE epoch (ST 2059-1: 1970-01-01 00:00:00 TAI, the PTP
  epoch). Its Video Transmission Datum T_VD = N x T_FRAME + TR_OFFSET is
  TPR_0, the instant the virtual receiver reads its first packet.
  TRO_DEFAULT (6.3.2, which 6.4 also takes for the linear schedule) is
  43/1125 x T_FRAME for images of 1080 lines or more, 28/750 x T_FRAME
  below; modgate's TR_OFFSET is more (below), and 6.2 has a sender signal
  any other value than TRO_DEFAULT (TROFF). The frame's RTP timestamp is
  the media clock at N x T_FRAME (ST 2110-10: the 90 kHz clock counted
  from the same epoch, modulo 2^32; rtp.frame_timestamp of N).
- The virtual receiver buffer, 6.6.2. A Type W sender is read on the linear
  schedule (6.4): TPR_j = TPR_0 + j x T_FRAME / N_PACKETS. Packet j must
  have left by TPR_j, and the buffer never holds more than VRX_FULL =
  MAX(INT(1500 x 720 / MAXUDP), INT(N_PACKETS / (300 x T_FRAME))) packets,
  MAXUDP = 1500 under the Standard UDP Size Limit, which modgate keeps.
- The network compatibility model, 6.6.1: a bucket that drains one packet
  every T_DRAIN = T_FRAME / N_PACKETS / beta (beta = 1.1), at the instants
  k x T_DRAIN since the epoch, never holds more than C_MAX = MAX(16,
  INT(N_PACKETS / (21600 x T_FRAME))) (7.1.4, for streams under 900 000
  packets a second).

The sender's plan (Schedule): a frame's datagrams leave in bursts of B
(default C_MAX / 2, one sendmsg with UDP generic segmentation offload),
packet j due LEAD before TPR_0 plus j times the gapped schedule's spacing
(6.3.2: T_FRAME x R_ACTIVE / N_PACKETS, R_ACTIVE = 1080/1125), a little
faster than the linear reads. The lead and the faster spacing keep every
packet ahead of its read when a sleep wakes late; what they cost is
buffer, about LEAD / T_RS + N_PACKETS x (1 - R_ACTIVE) + B packets.

A software sender's sleeps do wake late, by milliseconds now and then on a
loaded or virtual machine, and a wide sender's VRX_FULL is there for that
(7.1.4 note 3). So modgate's TR_OFFSET is TRO_DEFAULT plus up to JITTER_NS
(4 ms), as much of it as the buffer holds with a quarter of VRX_FULL to
spare, in whole microseconds, and signalled in the SDP's TROFF (8.2; a
Type W receiver shall take it, 7.2.4). The first packet is due at N x
T_FRAME + TRO_DEFAULT / 4, so LEAD = TR_OFFSET - TRO_DEFAULT / 4: never
before the instant its RTP timestamp names. At 1080p30 YCbCr-4:2:2 8-bit
(3240 packets, T_RS 10.3 us, VRX_FULL 720): TR_OFFSET 4.176 ms (TROFF=4176),
the first packet 319 us after N x T_FRAME, 3.86 ms ahead of its read, the
buffer at some 530 packets.

The sender runs the network compatibility bucket over its own sends
(Bucket): a burst leaves on schedule, or early when a sleep woke early, as
long as the bucket has room for it, else it waits until it has.
"""

NS = 1000000000

# 6.6.1 and 7.1: the scaling factor beta = 1.1 of every sender type.
BETA = (11, 10)
# 6.3.2: the gapped schedule's ratio of active to total time, progressive.
R_ACTIVE = (1080, 1125)
# 6.3.2 (and 6.4): TRO_DEFAULT as a fraction of T_FRAME, by image height.
TRO_TALL = (43, 1125)
TRO_SHORT = (28, 750)
TALL_LINES = 1080
# 7.1.4, Type W: C_MAX = MAX(16, INT(N / (21600 T_FRAME))), VRX_FULL =
# MAX(INT(1500 x 720 / MAXUDP), INT(N / (300 T_FRAME))).
CMAX_MIN_WIDE = 16
CMAX_WIDE_RATE = 21600
VRX_WIDE_OCTETS = 1500 * 720
VRX_WIDE_RATE = 300
# 7.1.2/7.1.3, Types N and NL (what a receiver may be told in TP=).
CMAX_MIN_NARROW = 4
CMAX_NARROW_RATE = 43200
VRX_NARROW_OCTETS = 1500 * 8
VRX_NARROW_RATE = 27000
# 7.1.2: MAXUDP in the VRX_FULL terms is 1500 under the Standard UDP Size
# Limit (ST 2110-10), which modgate keeps (st2110_20.MAX_DATAGRAM).
MAXUDP_STANDARD = 1500

# The plan's allowances: the longest late wake-up it buys buffer for; how
# early a burst may go (sleeps aim early by their average lateness); the
# part of VRX_FULL left spare.
JITTER_NS = 4000000
EARLY_NS = 200000
VRX_SPARE = (1, 4)

WIDE = "2110TPW"
NARROW = "2110TPN"
NARROW_LINEAR = "2110TPNL"


def cmax_wide(npackets, rate):
    """C_MAX of a wide sender (7.1.4), rate = (num, den) frames a second,
    so T_FRAME = den / num seconds."""
    return max(CMAX_MIN_WIDE, npackets * rate[0] // (CMAX_WIDE_RATE * rate[1]))


def vrx_full_wide(npackets, rate, maxudp=MAXUDP_STANDARD):
    """VRX_FULL of a wide sender (7.1.4), in packets."""
    return max(VRX_WIDE_OCTETS // maxudp, npackets * rate[0] // (VRX_WIDE_RATE * rate[1]))


def limits(sender_type, npackets, rate, maxudp=MAXUDP_STANDARD):
    """(C_MAX, VRX_FULL, read schedule's active ratio) of a sender type
    (the SDP's TP value), 7.1.2 to 7.1.4: Type N reads on the gapped
    schedule (6.3, ratio R_ACTIVE), Types NL and W on the linear one (6.4,
    ratio 1)."""
    num, den = rate
    if sender_type == WIDE:
        return cmax_wide(npackets, rate), vrx_full_wide(npackets, rate, maxudp), (1, 1)
    vrx_full = max(VRX_NARROW_OCTETS // maxudp, npackets * num // (VRX_NARROW_RATE * den))
    if sender_type == NARROW_LINEAR:
        return max(CMAX_MIN_NARROW, npackets * num // (CMAX_NARROW_RATE * den)), vrx_full, (1, 1)
    if sender_type == NARROW:
        cmax = npackets * num * R_ACTIVE[1] // (CMAX_NARROW_RATE * den * R_ACTIVE[0])
        return max(CMAX_MIN_NARROW, cmax), vrx_full, R_ACTIVE
    raise ValueError("sender type %r is not one of %s, %s, %s (ST 2110-21 7.1)"
                     % (sender_type, NARROW, NARROW_LINEAR, WIDE))


def tro_default_ns(height, rate):
    """TRO_DEFAULT in ns (6.3.2, progressive images; 6.4 takes the same)."""
    num, den = TRO_TALL if height >= TALL_LINES else TRO_SHORT
    return num * rate[1] * NS // (den * rate[0])


def planned_troffset_ns(npackets, rate, height, jitter_ns=JITTER_NS):
    """modgate's TR_OFFSET for a flow (see above): TRO_DEFAULT plus as much
    of jitter_ns as a quarter-spare VRX_FULL holds, capped at a quarter
    frame, in whole microseconds when it is not TRO_DEFAULT itself (the
    SDP's TROFF counts microseconds, 8.2)."""
    default = tro_default_ns(height, rate)
    frame = NS * rate[1] // rate[0]
    read = NS * rate[1] // (rate[0] * npackets)  # T_RS, linear (6.4)
    budget = vrx_full_wide(npackets, rate) * read * (VRX_SPARE[1] - VRX_SPARE[0]) // VRX_SPARE[1]
    cost = (3 * default // 4 + EARLY_NS + frame * (R_ACTIVE[1] - R_ACTIVE[0]) // R_ACTIVE[1]
            + cmax_wide(npackets, rate) * read)
    extra = min(jitter_ns, budget - cost, frame // 4)
    if extra < 1000:
        return default
    return (default + extra) // 1000 * 1000


def frame_start_ns(n, rate):
    """N x T_FRAME: the instant of frame slot n in ns since the SMPTE epoch
    (TAI), floored to the ns (6.2)."""
    return n * NS * rate[1] // rate[0]


def frame_count(tai_ns, rate):
    """The last frame slot n whose instant n x T_FRAME is not after tai_ns."""
    return tai_ns * rate[0] // (NS * rate[1])


def drain_ns(npackets, rate, beta=BETA):
    """T_DRAIN = T_FRAME / N_PACKETS / beta in ns (6.6.1), a float."""
    return NS * rate[1] * beta[1] / (rate[0] * npackets * beta[0])


def frame_of_timestamp(timestamp, tai_ns, rate, clock_rate=90000):
    """The frame slot n whose RTP timestamp (ST 2110-10: the media clock at
    n x T_FRAME, modulo 2^32) timestamp is, the wrap placed by tai_ns, a
    reading of the same clock within a few hours of it. The inverse of
    rtp.frame_timestamp: the smallest n whose media clock reaches it."""
    ticks = tai_ns * clock_rate // NS
    full = timestamp + (((ticks - timestamp) + (1 << 31)) >> 32 << 32)
    return -((-full * rate[0]) // (clock_rate * rate[1]))


class Schedule:
    """The sender's plan for one flow of npackets datagrams a frame at rate
    (num, den) frames a second, the image height lines tall. burst:
    datagrams a burst, at most C_MAX (default C_MAX // 2, which leaves half
    the bucket to the sleeps' jitter); troffset_ns: TR_OFFSET (default
    planned_troffset_ns()); lead_ns: how long before TPR_0 the first packet
    is due (default: so that it is due TRO_DEFAULT / 4 after N x T_FRAME).
    Times
    are integer ns: on the TAI timescale for slots and TPR_0, relative to
    TPR_0 for the packets of a frame."""

    def __init__(self, npackets, rate, height, burst=None, troffset_ns=None, lead_ns=None):
        if npackets < 1:
            raise ValueError("a frame needs at least one datagram")
        self.npackets = npackets
        self.rate = rate
        self.frame_ns = NS * rate[1] // rate[0]
        self.cmax = cmax_wide(npackets, rate)
        self.vrx_full = vrx_full_wide(npackets, rate)
        self.burst = min(burst or max(1, self.cmax // 2), self.cmax)
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self.tro_default = tro_default_ns(height, rate)
        self.troffset = planned_troffset_ns(npackets, rate, height) if troffset_ns is None else troffset_ns
        # 6.2: TR_OFFSET >= 0, measured from the most recent N x T_FRAME.
        if not 0 <= self.troffset < self.frame_ns:
            raise ValueError("TR_OFFSET %d ns is not inside the frame period" % self.troffset)
        if lead_ns is None:
            lead_ns = self.troffset - min(self.troffset, self.tro_default) // 4
        self.lead = lead_ns
        # The first packet not before N x T_FRAME, the instant its RTP
        # timestamp names (the frame cannot leave before it was sampled).
        if not 0 <= self.lead <= self.troffset:
            raise ValueError("lead %d ns is outside 0..TR_OFFSET (%d ns)" % (self.lead, self.troffset))
        self.drain = drain_ns(npackets, rate)
        # integer ns per packet, as numerator / denominator
        self._read = (NS * rate[1], rate[0] * npackets)
        self._send = (NS * rate[1] * R_ACTIVE[0], rate[0] * R_ACTIVE[1] * npackets)

    def troff_us(self):
        """The SDP's TROFF (8.2, whole microseconds), or None when
        TR_OFFSET is TRO_DEFAULT (then it is not signalled, 6.2)."""
        if self.troffset == self.tro_default:
            return None
        return self.troffset // 1000

    def tpr0_ns(self, n):
        """T_VD = TPR_0 of frame slot n: n x T_FRAME + TR_OFFSET (6.2)."""
        return frame_start_ns(n, self.rate) + self.troffset

    def read_ns(self, j):
        """TPR_j - TPR_0 on the linear schedule (6.4): j x T_FRAME / N."""
        return j * self._read[0] // self._read[1]

    def offset_ns(self, j):
        """When datagram j of a frame is due, from TPR_0: the lead before
        it, then the gapped schedule's spacing (6.3.2)."""
        return j * self._send[0] // self._send[1] - self.lead

    def slot(self, tai_ns, after=None):
        """The frame slot for a frame ready at tai_ns: the first n (not
        before after, the slot following the last one used) whose first
        packet can still leave before it is read (TPR_0 > tai_ns). The
        slots between after and n are the ones a late source missed."""
        n = frame_count(tai_ns - self.troffset, self.rate) + 1
        while self.tpr0_ns(n) <= tai_ns:
            n += 1
        while self.tpr0_ns(n - 1) > tai_ns:
            n -= 1
        if after is not None and n < after:
            n = after
        return n

    def bucket(self):
        return Bucket(self.drain, self.cmax)


class Bucket:
    """The network compatibility model's leaky bucket as a fluid: it drains
    one packet every drain ns, continuously; add() puts count packets in at
    once. The sender keeps its level under C_MAX; the standard's bucket
    (NetworkCompatibility) drains whole packets at instants of its grid, so
    its level is never above the fluid one rounded up, and an integer C_MAX
    the fluid level respects holds there too."""

    def __init__(self, drain, cmax):
        self.drain = drain
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


class NetworkCompatibility:
    """6.6.1 as written, over arrival times: packets enter a bucket the
    instant they arrive; one leaves, if there is one, at each instant
    k x T_DRAIN since the SMPTE epoch. C_INST is its level with the
    arriving packets counted; peak is the most it held."""

    def __init__(self, npackets, rate, beta=BETA):
        # tick k at k x T_DRAIN: the tick of t is floor(t / T_DRAIN)
        self._mul = rate[0] * npackets * beta[0]
        self._div = NS * rate[1] * beta[1]
        self.level = 0
        self.peak = 0
        self._tick = None

    def arrive(self, tai_ns, count=1):
        tick = tai_ns * self._mul // self._div
        if self._tick is not None and tick > self._tick:
            self.level = max(0, self.level - (tick - self._tick))
        self._tick = tick
        self.level += count
        if self.level > self.peak:
            self.peak = self.level


class VirtualReceiver:
    """6.6.2 over arrival times: packet j of frame slot n enters the
    buffer when it arrives and leaves at TPR_j = n x T_FRAME + TR_OFFSET +
    j x T_RS, T_RS = T_FRAME x ratio / N_PACKETS (ratio: 1 for the linear
    schedule of Types NL and W, R_ACTIVE for Type N's gapped one).

    After frame() has seen whole frames: peak, the most packets the buffer
    held (against VRX_FULL); late_ns, the latest any packet arrived after
    its read (> 0: the buffer ran dry, an underflow; < 0: every packet was
    ahead by at least that); late_frames, how many frames had a packet more
    than tolerance_ns after its read (the time from the sender's interface
    to where the arrivals are timed); first_ns, (earliest, latest) arrival
    of a frame's first packet relative to its TPR_0."""

    def __init__(self, npackets, rate, troffset_ns, ratio=(1, 1), tolerance_ns=0):
        self.npackets = npackets
        self.tolerance = tolerance_ns
        self.late_frames = 0
        self.rate = rate
        self.troffset = troffset_ns
        # T_RS as an integer ratio: j reads take j * _num // _den ns
        self._num = NS * rate[1] * ratio[0]
        self._den = rate[0] * ratio[1] * npackets
        self.peak = 0
        self.late_ns = None
        self.first_ns = None
        self.frames = 0
        self._prev = None  # TPR_0 of the previous whole frame fed

    def _reads(self, since):
        """How many of a frame's reads happened within since ns of its TPR_0."""
        if since < 0:
            return 0
        done = since * self._den // self._num + 1
        return done if done < self.npackets else self.npackets

    def frame(self, n, arrivals):
        """Frame slot n's packets, all npackets of them, by arrival time
        (TAI ns, in order)."""
        if len(arrivals) != self.npackets:
            raise ValueError("frame of %d packets, the flow has %d" % (len(arrivals), self.npackets))
        tpr0 = frame_start_ns(n, self.rate) + self.troffset
        prev = self._prev
        if prev is not None and prev >= tpr0:
            prev = None  # out of order: no carry-over
        peak, worst = self.peak, None
        count = self.npackets
        last = count - 1
        for j in range(count):
            t = arrivals[j]
            since = t - tpr0
            # the read of packet j happened j * T_RS after TPR_0
            behind = since - j * self._num // self._den
            if worst is None or behind > worst:
                worst = behind
            if j < last and arrivals[j + 1] == t:
                continue  # a burst: the level peaks at its last packet
            arrived = j + 1
            read = self._reads(since)
            level = arrived - (read if read < arrived else arrived)
            if prev is not None:
                # the previous frame's packets not yet read at t
                level += count - self._reads(t - prev)
            if level > peak:
                peak = level
        first = arrivals[0] - tpr0
        if self.first_ns is None:
            self.first_ns = (first, first)
        else:
            self.first_ns = (min(self.first_ns[0], first), max(self.first_ns[1], first))
        if worst > self.tolerance:
            self.late_frames += 1
        if self.late_ns is None or worst > self.late_ns:
            self.late_ns = worst
        self.peak = peak
        self._prev = tpr0
        self.frames += 1

    def gap(self):
        """A frame was lost or cut: the next one carries nothing over."""
        self._prev = None
