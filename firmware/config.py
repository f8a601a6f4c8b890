"""The gateway's configuration: a JSON file, validated whole at start-up.

Every key has a default, a check and a one-line meaning (SCHEMA). A file
names only what differs from the defaults; an unknown key or a bad value
stops start-up with the key and the reason (ConfigError), never a guess.
Keys are dotted paths ("pacs.port"); the file nests them as objects.
"""

import json

from firmware.compat import all_digits
from firmware.dicom.iod import IODS as _IOD_TABLE, TRANSFER_SYNTAXES, check_transfer_syntax, transfer_syntax_of
from firmware.dicom.uid import check_uid, generate_uid
from firmware.dicom.vr import UTF8, encode_value


class ConfigError(ValueError):
    def __init__(self, key, reason):
        super().__init__("config key %r: %s" % (key, reason))
        self.key = key
        self.reason = reason


def _int(lo, hi):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be a whole number"
        if not lo <= v <= hi:
            return "must be %d to %d, got %d" % (lo, hi, v)
    return check


def _num(lo, hi):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "must be a number"
        if not lo <= v <= hi:
            return "must be %s to %s, got %s" % (lo, hi, v)
    return check


def _optional(check):
    """check, or None (the key's 'not set')."""
    def optional(v):
        if v is not None:
            return check(v)
    return optional


def _optional_num(lo, hi):
    return _optional(_num(lo, hi))


def _optional_int(lo, hi):
    return _optional(_int(lo, hi))


def _one_of(*choices):
    def check(v):
        if v not in choices:
            return "must be one of %s, got %r" % (", ".join(repr(c) for c in choices if c is not None), v)
    return check


def _text(max_chars, empty=True):
    def check(v):
        if not isinstance(v, str):
            return "must be text"
        if len(v) > max_chars:
            return "must be at most %d characters" % max_chars
        if not empty and not v.strip():
            return "must not be empty"
        for ch in v:
            if ord(ch) < 0x20 or ch == "\\":
                return "must not contain control characters or backslashes"
    return check


def _quoted(v):
    return len(v) >= 2 and v[0] == v[-1] and v[0] in "'\""


def _dicom(vr, empty=True):
    """A value that goes into the objects as an element of this VR: checked
    by the encoder's own rules (firmware/dicom/vr.py, PS3.5 6.2), with
    Specific Character Set ISO_IR 192 where the VR allows one, so what
    passes here encodes, and what would not is refused where it is typed."""
    def check(v):
        if not isinstance(v, str):
            return "must be text"
        if not empty and not v.strip():
            return "must not be empty"
        if _quoted(v):
            return "is in quotes, which would be stored as part of it: give the value without them"
        for ch in v:
            if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
                return "must not contain control characters (0x%02X)" % ord(ch)
        try:
            encode_value(vr, v, UTF8)
        except ValueError as err:
            return str(err)
    return check


def _ae_title(v):
    return _dicom("AE", empty=False)(v)


def _uid_root(v):
    """An organisation's UID root that leaves room for generated UIDs, as
    firmware/dicom/uid.generate_uid makes them (PS3.5 9.1)."""
    if not isinstance(v, str):
        return "must be text"
    try:
        generate_uid(v)
    except ValueError as err:
        return str(err)


def _ipv4(text):
    parts = text.split(".")
    return len(parts) == 4 and all(all_digits(p) and len(p) <= 3 and int(p) <= 255 for p in parts)


def _ipv6(text):
    if text.count("::") > 1 or not 2 <= text.count(":") <= 7:
        return False
    groups = text.split(":")
    if _ipv4(groups[-1]):  # ::ffff:192.0.2.1
        groups = groups[:-1] + ["0", "0"]
    for g in groups:
        if len(g) > 4 or any(c not in "0123456789abcdefABCDEF" for c in g):
            return False
    return "::" in text or len(groups) == 8


def _host(v):
    """An IPv4 or IPv6 literal or a host name (RFC 1123 labels)."""
    if not isinstance(v, str) or not v:
        return "must be a host name or an IPv4/IPv6 address"
    if _ipv4(v) or _ipv6(v):
        return
    if all_digits(v.replace(".", "")):
        return "is not a valid IPv4 address"
    if len(v) > 253:
        return "host name longer than 253 characters"
    for label in v.rstrip(".").split("."):
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return "is not a valid host name (label %r)" % label
        for c in label:
            if not ("a" <= c.lower() <= "z" or "0" <= c <= "9" or c == "-"):
                return "is not a valid host name (character %r)" % c


def _address(v):
    if not (isinstance(v, str) and (_ipv4(v) or _ipv6(v))):
        return "must be an IPv4 or IPv6 address"


def _netmask(v):
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 128:
        return
    if isinstance(v, str) and _ipv4(v):
        bits = "".join("{:08b}".format(int(p)) for p in v.split("."))
        if "01" not in bits:
            return
    return "must be a prefix length (0-128) or a contiguous IPv4 mask like 255.255.255.0"


def _multicast_or_unicast(v):
    problem = _address(v)
    if problem:
        return problem


def _interface(v):
    if not (isinstance(v, str) and 1 <= len(v) <= 15 and "/" not in v and " " not in v):
        return "must be an interface name (1-15 characters, no '/' or spaces)"


def _uid_or_empty(v):
    if v == "":
        return None
    if not isinstance(v, str):
        return "must be text"
    try:
        check_uid(v)
    except ValueError as err:
        return str(err)


def _optional_host(v):
    return None if v is None else _host(v)


def _optional_modality(v):
    if v is None:
        return None
    return _dicom("CS", empty=False)(v)


def _optional_path(v):
    if v is not None and not (isinstance(v, str) and v):
        return "must be a file path or null"


MAX_RATE = 1000  # frames per second
MIN_RATE = (1, 86400)  # one frame a day


def _rate(v):
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)):
        return "must be [numerator, denominator] of positive whole numbers, e.g. [30, 1]"
    if v[0] > MAX_RATE * v[1] or v[0] * MIN_RATE[1] < v[1]:
        return "must be from %d/%d to %d frames per second, got %d/%d" % (MIN_RATE + (MAX_RATE,) + tuple(v))


def _bool(v):
    if not isinstance(v, bool):
        return "must be true or false"


IODS = tuple(sorted(_IOD_TABLE))

# key: (default, check, meaning)
SCHEMA = {
    "board": ("host", _one_of("host", "qemu_virt", "imx8mp_gateway"), "the board file: which drivers and limits"),
    "acquisition.width": (None, _int(16, 8192), "frame width; null: the board's default"),
    "acquisition.height": (None, _int(16, 8192), "frame height; null: the board's default"),
    "acquisition.pixel": (None, _one_of(None, "rgb8", "mono8", "mono16", "ycbcr422"), "pixel format; null: the board's default"),
    "acquisition.rate": (None, _rate, "frames per second [num, den]; null: the board's default"),
    "acquisition.paced": (True, _bool, "simulated board: deliver frames at the rate (false: as fast as possible)"),
    "clip.mode": ("frames", _one_of("frames", "seconds", "command"), "what ends a clip: a frame count, a duration, or a stop command"),
    "clip.frames": (30, _int(1, 100000), "frames per clip (mode frames)"),
    "clip.seconds": (10, _num(0.1, 3600), "seconds per clip (mode seconds)"),
    "clip.count": (0, _int(0, 10 ** 9), "clips to record, then stop recording; 0: until stopped"),
    "clip.iod": ("video-endoscopic", _one_of(*IODS), "the IOD each clip is encoded as"),
    "clip.transfer_syntax": (None, _optional(_one_of(*TRANSFER_SYNTAXES)),
                             "how clips are stored: h264 (MPEG-4 AVC/H.264 HP@L4.1), h264-bd, h264-hp42, "
                             "jpeg-baseline, explicit or implicit (uncompressed); null: the IOD's (h264 for video, "
                             "jpeg-baseline for colour stills and true colour SC, explicit for grayscale SC)"),
    "clip.bitrate": (None, _optional_num(0.1, 62.5), "H.264 average bit rate, Mbit/s; null: constant quality "
                                                     "(CRF 23) capped at 40 Mbit/s"),
    "clip.gop": (None, _optional_int(1, 3600), "H.264 frames from one IDR picture to the next; null: 2 s"),
    "clip.jpeg_quality": (90, _int(1, 100), "JPEG Baseline quality (libjpeg's scale)"),
    "patient.name": ("", _dicom("PN"), "Patient's Name (PN: Family^Given)"),
    "patient.id": ("", _dicom("LO"), "Patient ID"),
    "patient.birth_date": ("", _dicom("DA"), "Patient's Birth Date, YYYYMMDD"),
    "patient.sex": ("", _one_of("", "M", "F", "O"), "Patient's Sex"),
    "study.accession_number": ("", _dicom("SH"), "Accession Number"),
    "study.description": ("", _dicom("LO"), "Study Description"),
    "study.referring_physician": ("", _dicom("PN"), "Referring Physician's Name"),
    "study.instance_uid": ("", _uid_or_empty, "Study Instance UID of the procedure (from the worklist); empty: a new one per study"),
    "study.requested_procedure_id": ("", _dicom("SH"), "Requested Procedure ID (worklist); also the Study ID"),
    "study.scheduled_step_id": ("", _dicom("SH"), "Scheduled Procedure Step ID (worklist)"),
    "study.scheduled_step_description": ("", _dicom("LO"), "Scheduled Procedure Step Description (worklist)"),
    "study.performed_step_uid": ("", _uid_or_empty, "the procedure's MPPS SOP Instance UID (set by the box with "
                                                    "mpps.host; the clips reference it)"),
    "station.ae_title": ("MODGATE", _ae_title, "our AE title (calling AE)"),
    "station.name": ("", _dicom("SH"), "Station Name"),
    "station.uid_root": (None, _uid_root, "UID root; null: 2.25 UUID-derived UIDs"),
    "pacs.host": ("127.0.0.1", _host, "the Storage SCP's host name or address"),
    "pacs.port": (104, _int(1, 65535), "the Storage SCP's TCP port"),
    "pacs.ae_title": ("ANY-SCP", _ae_title, "the Storage SCP's AE title (called AE)"),
    "pacs.maximum_length": (65536, _int(4096, 4 * 1024 * 1024),
                            "Maximum Length (PS3.8 D.1): the largest P-DATA-TF we receive; we send no longer than this or the SCP's"),
    "pacs.tls": (False, _bool, "DICOM TLS (PS3.15)"),
    "pacs.ca": (None, _optional_path, "CA certificates for the SCP's certificate"),
    "pacs.cert": (None, _optional_path, "our certificate for client authentication"),
    "pacs.key": (None, _optional_path, "our private key"),
    "pacs.connect_timeout": (10.0, _num(0.1, 600), "seconds to set up the TCP connection (and TLS handshake)"),
    "pacs.acse_timeout": (30.0, _num(0.1, 600), "seconds to wait for A-ASSOCIATE-AC/RJ and A-RELEASE-RP"),
    "pacs.dimse_timeout": (60.0, _num(0.1, 3600), "seconds to wait for a C-STORE-RSP or C-ECHO-RSP"),
    "pacs.network_timeout": (60.0, _num(0.1, 3600), "seconds any single socket send or receive may take"),
    "pacs.idle_release": (5.0, _num(0, 3600), "release the association after this many idle seconds"),
    "pacs.commit": (False, _bool, "Storage Commitment (PS3.4 J): keep every object in the spool until the PACS "
                                  "commits to it"),
    "pacs.commit_timeout": (600.0, _num(1, 7 * 86400), "seconds to wait for a commitment report before asking again"),
    "pacs.commit_port": (0, _int(0, 65535), "TCP port the box listens on for the PACS's commitment reports on a new "
                                           "association (only the PACS's AE title and address); 0: no listener, "
                                           "reports only on the association the request went on"),
    "network.interface": (None, _interface, "the NIC to use; null: the board's"),
    "network.address": (None, _address, "static address; null: as the OS configured it (DHCP)"),
    "network.netmask": (None, _netmask, "static netmask or prefix length"),
    "network.gateway": (None, _address, "default gateway for the static address"),
    "mpps.host": (None, _optional_host, "the MPPS SCP's host name or address (PS3.4 F); null: no MPPS"),
    "mpps.port": (104, _int(1, 65535), "the MPPS SCP's TCP port"),
    "mpps.ae_title": ("ANY-SCP", _ae_title, "the MPPS SCP's AE title (called AE)"),
    "mpps.tls": (False, _bool, "DICOM TLS (PS3.15) to the MPPS SCP, with pacs.ca, pacs.cert and pacs.key"),
    "worklist.host": (None, _optional_host, "the Modality Worklist SCP's host name or address; null: no worklist"),
    "worklist.port": (104, _int(1, 65535), "the Modality Worklist SCP's TCP port"),
    "worklist.ae_title": ("ANY-SCP", _ae_title, "the Modality Worklist SCP's AE title (called AE)"),
    "worklist.tls": (False, _bool, "DICOM TLS (PS3.15) to the worklist SCP, with pacs.ca, pacs.cert and pacs.key"),
    "worklist.modality": (None, _optional_modality, "Modality to ask for; null: the IOD's (ES, XC, OT)"),
    "worklist.max_matches": (100, _int(1, 10000), "items kept from one query; more are cancelled (C-CANCEL)"),
    "worklist.refresh": (300, _int(0, 86400), "seconds between worklist queries; 0: only on the console's worklist refresh"),
    "rtv.host": ("239.1.1.1", _multicast_or_unicast, "PS3.22 real-time video destination (multicast group or unicast)"),
    "rtv.port": (5004, _int(1, 65535), "RTP destination port"),
    "rtv.ttl": (1, _int(0, 255), "multicast TTL"),
    "rtv.metadata_port": (5006, _int(1, 65535), "RTP destination port of the DICOM metadata flow (same host)"),
    "rtv.enabled": (False, _bool, "stream the recorded frames per PS3.22 from start-up (console: stream start|stop)"),
    "console.idle_logout": (300, _int(10, 86400), "seconds without input before the console logs out"),
    "spool.root": (None, _text(4096, empty=False), "spool folder; null: the board's default"),
    "spool.max_bytes": (2 * 1024 ** 3, _int(1024 * 1024, 2 ** 50), "bound on queued + quarantined + in-progress bytes"),
    "spool.min_free_bytes": (64 * 1024 * 1024, _int(0, 2 ** 50), "free space the file system must keep"),
    "spool.max_failures": (5, _int(1, 1000), "failure statuses before an object is quarantined"),
    "spool.retain_sent": (0, _int(0, 10 ** 6), "sent objects to keep (0: delete once stored)"),
    "spool.backoff_initial": (1.0, _num(0.01, 3600), "first retry delay, seconds"),
    "spool.backoff_max": (60.0, _num(0.01, 86400), "longest retry delay, seconds"),
}


# The keys that name the patient and the exam: a change of any of them starts
# a new study (the recorder), and the console's `exam end` clears them all.
EXAM_KEYS = ("patient.name", "patient.id", "patient.birth_date", "patient.sex",
             "study.accession_number", "study.description", "study.referring_physician", "study.instance_uid",
             "study.requested_procedure_id", "study.scheduled_step_id", "study.scheduled_step_description",
             "study.performed_step_uid")


def defaults():
    return dict((key, spec[0]) for key, spec in SCHEMA.items())


def check(key, value):
    """Raise ConfigError unless value is good for key."""
    if key not in SCHEMA:
        raise ConfigError(key, "unknown key")
    default, checker, _ = SCHEMA[key]
    if value is None and default is None:
        return
    problem = checker(value)
    if problem:
        raise ConfigError(key, problem)


# Keys renamed since a box may have saved them: read under the new name (the
# next save writes that one).
RENAMED = {"pacs.max_pdu": "pacs.maximum_length"}

MAX_DEPTH = 4  # sections nest keys one level deep; anything deeper is not a configuration
MAX_FILE_BYTES = 1 << 20


def flatten(tree, prefix="", depth=0):
    flat = {}
    if not isinstance(tree, dict):
        raise ConfigError(prefix.rstrip(".") or "(top)", "must be an object")
    if depth > MAX_DEPTH:
        raise ConfigError(prefix.rstrip("."), "nested deeper than any key")
    for name, value in tree.items():
        key = prefix + name
        if isinstance(value, dict):
            if key in SCHEMA:
                raise ConfigError(key, "must be a value, not an object")
            flat.update(flatten(value, key + ".", depth + 1))
        else:
            flat[RENAMED.get(key, key)] = value
    return flat


def load(path=None, text=None):
    """The full configuration (defaults overlaid with the file), as a flat
    dict of dotted keys. Raises ConfigError; a problem with the file as a
    whole (unreadable, not UTF-8, not JSON, absurdly nested) names it."""
    values, problem = salvage(path, text)
    if problem is not None:
        raise problem
    return values


def salvage(path=None, text=None):
    """(values, first ConfigError or None): the file's keys that pass their
    checks over the defaults, the others left at their defaults. For a
    console that must open on a configuration that cannot apply, so that
    the technician edits what the file says, not the defaults."""
    try:
        tree = _read(path, text)
    except ConfigError as err:
        return defaults(), err
    values = defaults()
    problem = None
    try:
        flat = flatten(tree)
    except ConfigError as err:
        return values, err
    for key, value in flat.items():
        try:
            check(key, value)
            values[key] = value
        except ConfigError as err:
            problem = problem or err
    if problem is None:
        try:
            validate(values)
        except ConfigError as err:
            problem = err
    return values, problem


def _read(path, text):
    """The file's JSON tree ({} for none)."""
    where = path or "the configuration"
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ConfigError("(file)", "cannot read %s: %s" % (path, err))
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError("(file)", "%s is larger than %d bytes: not a configuration" % (path, MAX_FILE_BYTES))
        try:
            text = raw.decode("utf-8")
        except UnicodeError:
            raise ConfigError("(file)", "%s is not UTF-8 text" % path)
    if text:
        try:
            tree = json.loads(text)
        except ValueError as err:
            raise ConfigError("(file)", "%s is not valid JSON: %s" % (where, err))
        except RuntimeError:  # RecursionError on CPython
            raise ConfigError("(file)", "%s is nested too deeply to be a configuration" % where)
        return tree
    return {}


def validate(values):
    """Checks that concern more than one key."""
    if values["network.address"] and not values["network.netmask"]:
        raise ConfigError("network.netmask", "a static network.address needs a netmask")
    if values["mpps.tls"] and not values["pacs.ca"]:
        raise ConfigError("pacs.ca", "mpps.tls needs a CA file (pacs.ca) to verify the MPPS SCP with")
    if values["worklist.tls"] and not values["pacs.ca"]:
        raise ConfigError("pacs.ca", "worklist.tls needs a CA file (pacs.ca) to verify the worklist SCP with")
    if values["pacs.tls"] and not values["pacs.ca"]:
        raise ConfigError("pacs.ca", "pacs.tls needs a CA file to verify the SCP with")
    if bool(values["pacs.cert"]) != bool(values["pacs.key"]):
        raise ConfigError("pacs.key", "pacs.cert and pacs.key go together")
    if values["pacs.tls"] and values["pacs.commit"] and values["pacs.commit_port"] and not values["pacs.cert"]:
        raise ConfigError("pacs.cert", "a TLS listener for commitment reports (pacs.commit_port) needs our certificate "
                                       "and key (pacs.cert, pacs.key)")
    if values["spool.backoff_max"] < values["spool.backoff_initial"]:
        raise ConfigError("spool.backoff_max", "must not be less than spool.backoff_initial")
    try:
        check_transfer_syntax(transfer_syntax_of(values["clip.transfer_syntax"], values["clip.iod"]), values["clip.iod"],
                              values["acquisition.pixel"] or "rgb8")
    except ValueError as err:
        raise ConfigError("clip.transfer_syntax", str(err))
    if values["clip.iod"] == "vl-endoscopic" and values["clip.mode"] != "frames":
        raise ConfigError("clip.mode", "vl-endoscopic is single-frame: clip.mode must be frames")
    if values["clip.iod"] == "vl-endoscopic" and values["clip.frames"] != 1:
        raise ConfigError("clip.frames", "vl-endoscopic is single-frame: clip.frames must be 1")
    pixel = values["acquisition.pixel"]
    formats = _IOD_TABLE[values["clip.iod"]].pixel_formats
    if pixel is not None and pixel not in formats:
        # PS3.3 A.8 / A.32: the IOD fixes the Photometric Interpretation.
        raise ConfigError("acquisition.pixel", "clip.iod %s takes %s pixels, not %s" % (
            values["clip.iod"], " or ".join(formats), pixel))


def parse_value(key, text):
    """A console argument as the value for key: null, true/false, numbers and
    [a, b] lists read as JSON, unless the key takes text; the first reading
    the key accepts wins (so patient.id 12345 stays text)."""
    if key not in SCHEMA:
        raise ConfigError(key, "unknown key")
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        # Typed as a shell would take it: 'Smith^John Q' is the name
        # between the quotes (a JSON string in double quotes is too).
        text = json.dumps(text[1:-1])
    candidates = []
    try:
        candidates.append(json.loads(text))
    except ValueError:
        pass
    if isinstance(SCHEMA[key][0], float) and candidates and type(candidates[0]) is int:
        candidates[0] = float(candidates[0])
    candidates.append(text)
    for value in candidates:
        try:
            check(key, value)
            return value
        except ConfigError:
            pass
    return candidates[0]


def nest(values):
    """Flat dotted keys back into the nested form of the file."""
    tree = {}
    for key in sorted(values):
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = values[key]
    return tree


def save(storage, name, values):
    """Write the keys that differ from the defaults, atomically: a new file,
    fsynced, renamed over the old one, the folder fsynced (the storage
    driver's rename). Validates the whole configuration first; raises
    ConfigError and writes nothing if it does not hold."""
    for key, value in values.items():
        check(key, value)
    validate(values)
    changed = dict((k, v) for k, v in values.items() if v != SCHEMA[k][0])
    data = (json.dumps(nest(changed), indent=1, sort_keys=True) + "\n").encode()
    write_atomic(storage, name, data)


def write_atomic(storage, name, data):
    """A new file, fsynced, renamed over the old one and the folder fsynced
    (the storage driver's rename): a reader or a power cut sees the old
    file or the new one, never half of either."""
    temp = name + ".new"
    if storage.exists(temp):
        storage.remove(temp)
    f = storage.open_new(temp)
    try:
        f.write(data)
        storage.sync(f)
    finally:
        f.close()
    storage.rename(temp, name)
