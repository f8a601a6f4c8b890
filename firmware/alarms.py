"""Alarms: the faults a technician must see, each with when it started and
what to check. A fault belongs to the thing that failed (the PACS, one
object, the acquisition device, the spool); the gateway raises it under that
thing's key, clears it when the thing works again, and keeps going.

    alarms.set("pacs", "association rejected: ...", "check pacs.ae_title")
    alarms.clear("pacs")
    alarms.active() -> [(key, since, text, hint)], oldest first

since is the wall clock (UTC) tuple of the HAL clock when the alarm was
first raised; raising it again with another text keeps that time. Every
change is logged once, not at every retry.
"""


class Alarms:
    def __init__(self, clock, log):
        self._clock = clock
        self._log = log
        self._active = {}  # key -> [since, text, hint]

    def set(self, key, text, hint=""):
        entry = self._active.get(key)
        if entry is None:
            self._active[key] = [self._clock.wall_utc(), text, hint]
        elif entry[1] == text:
            return
        else:
            entry[1], entry[2] = text, hint
        self._log("ALARM %s: %s%s" % (key, text, " (%s)" % hint if hint else ""))

    def clear(self, key):
        if self._active.pop(key, None) is not None:
            self._log("alarm cleared: %s" % key)

    def text(self, key):
        entry = self._active.get(key)
        return entry[1] if entry else None

    def active(self):
        # A copy first: the recorder and the sender raise alarms meanwhile.
        items = [(entry[0], key, entry[1], entry[2]) for key, entry in list(self._active.items())]
        items.sort()
        return [(key, since, text, hint) for since, key, text, hint in items]


def hint_for(message, peer="pacs", name="the PACS"):
    """What to check for an association fault, from its message (the
    rejection reasons of PS3.8 9.3.4 and the transport's errors). peer: the
    configuration section of the peer ("pacs", "worklist"), name: what the
    technician calls it."""
    text = message.lower().replace("-", " ").replace("_", " ")
    if "called ae" in text:
        return "check %s.ae_title: %s does not know that called AE title" % (peer, name)
    if "calling ae" in text:
        return "check station.ae_title: %s does not know our calling AE title" % name
    if "http" in text:
        return "%s.port answers HTTP, not DICOM: check %s.port" % (peer, peer)
    if "refused" in text:
        return "nothing accepts connections there: check %s.host, %s.port and that %s runs" % (peer, peer, name)
    if "timed out" in text or "timeout" in text or "unreachable" in text or "no route" in text:
        return "no answer: check the network, %s.host and %s.port" % (peer, peer)
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "TLS failed: check pacs.ca, pacs.cert and pacs.key"
    if "name or service" in text or "resolve" in text or "getaddrinfo" in text:
        return "the host name does not resolve: check %s.host and the DNS" % peer
    return ""
