"""The DICOM Conformance Statement, generated from the code's own tables
(host side, CPython only).

    modgate conformance [--format md|html] [--out FILE]

The document follows the pro-forma of PS3.2 Annex A (overview, table of
contents, introduction, networking, media interchange, character sets,
security, annexes) and adds the PS3.22 real-time section. Every table is read
from the data the firmware itself runs on: the IODs and SOP classes
(firmware/dicom/iod.py, uid.py), the presentation contexts as acse.propose
builds them, the C-STORE status ranges (firmware/net/dimse.py) and what the
sender does with each class (firmware/sender.py DISPOSITION), the configuration
schema (firmware/config.py), the TLS context (hal/tcp.py), the console's
password and lockout constants, and the RTP/SDP writers (firmware/rtv). So a
change there changes the statement; tests/test_conformance.py holds the
shipped docs/conformance.md to the freshly generated text.

The document is built once as a list of blocks (headings, paragraphs,
tables, preformatted text, lists) and rendered as Markdown or HTML.
"""

import html
import inspect
import json
import re
import sys

from firmware import __version__, config, recorder, sender
from firmware.compat import crypto
from firmware.console import shell
from firmware.dicom import decode, tags, uid
from firmware.dicom.encoder import MANUFACTURER
from firmware.dicom.iod import CODEC_ONLY_PIXELS, IODS, PIXEL_FORMATS, TRANSFER_SYNTAXES, check_transfer_syntax, default_transfer_syntax
from firmware.dicom.vr import UTF8
from firmware.net import acse, dimse, pdu
from firmware.rtv import metadata, pacing, rtp, sdp, st2110_20
from firmware import procedure
from firmware.services import commitment, mpps, worklist
from firmware.association import Timeouts
from hal.tcp import tls_context

REGENERATE = "modgate conformance --out docs/conformance.md"

# Example values for the SDP shown in the PS3.22 section (not defaults of
# anything): a 1080p30 YCbCr-4:2:2 flow to the configured destination.
EXAMPLE_VIDEO = {"width": 1920, "height": 1080, "rate": (30, 1), "sampling": "YCbCr-4:2:2", "depth": 8}
EXAMPLE_SOURCE = "192.0.2.10"  # RFC 5737 documentation address


# -- the document model -------------------------------------------------------
class Document:
    """Blocks in order: ("h", level, number, title, anchor), ("p", text),
    ("table", headers, rows), ("pre", text), ("ul", items), ("toc",).
    Text may carry `code` spans; nothing else is markup."""

    def __init__(self, title):
        self.title = title
        self.blocks = []
        self._numbers = []

    def heading(self, level, title, numbered=True):
        number = ""
        if numbered:
            del self._numbers[level:]
            while len(self._numbers) < level:
                self._numbers.append(0)
            self._numbers[level - 1] += 1
            number = ".".join(str(n) for n in self._numbers[:level])
        anchor = "s" + number.replace(".", "-") if number else re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self.blocks.append(("h", level, number, title, anchor))

    def p(self, text):
        self.blocks.append(("p", text))

    def table(self, headers, rows):
        self.blocks.append(("table", list(headers), [[str(c) for c in row] for row in rows]))

    def pre(self, text):
        self.blocks.append(("pre", text.rstrip("\n")))

    def ul(self, items):
        self.blocks.append(("ul", list(items)))

    def toc(self):
        self.blocks.append(("toc",))

    def headings(self):
        return [b for b in self.blocks if b[0] == "h"]


def _heading_text(block):
    _, _, number, title, _ = block
    return (number + " " + title) if number else title


def render_md(doc):
    out = ["# " + doc.title, ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out += ['<a id="%s"></a>' % block[4], "", "#" * (block[1] + 1) + " " + _heading_text(block), ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            cell = lambda text: text.replace("|", "\\|")
            out.append("| " + " | ".join(cell(h) for h in headers) + " |")
            out.append("|" + "|".join(" --- " for _ in headers) + "|")
            for row in rows:
                out.append("| " + " | ".join(cell(c) for c in row) + " |")
            out.append("")
        elif kind == "pre":
            out += ["```", block[1], "```", ""]
        elif kind == "ul":
            out += ["- " + item for item in block[1]] + [""]
        elif kind == "toc":
            for h in doc.headings():
                if h[2]:
                    out.append("    " * (h[1] - 1) + "- [%s](#%s)" % (_heading_text(h), h[4]))
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _inline_html(text):
    parts = text.split("`")
    return "".join(("<code>%s</code>" if i % 2 else "%s") % html.escape(part) for i, part in enumerate(parts))


def render_html(doc):
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>',
           "<title>%s</title>" % html.escape(doc.title),
           "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}</style>",
           "</head>", "<body>", "<h1>%s</h1>" % html.escape(doc.title)]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            level = min(block[1] + 1, 6)
            out.append('<h%d id="%s">%s</h%d>' % (level, block[4], html.escape(_heading_text(block)), level))
        elif kind == "p":
            out.append("<p>%s</p>" % _inline_html(block[1]))
        elif kind == "table":
            out.append("<table>")
            out.append("<tr>" + "".join("<th>%s</th>" % _inline_html(h) for h in block[1]) + "</tr>")
            for row in block[2]:
                out.append("<tr>" + "".join("<td>%s</td>" % _inline_html(c) for c in row) + "</tr>")
            out.append("</table>")
        elif kind == "pre":
            out.append("<pre>%s</pre>" % html.escape(block[1]))
        elif kind == "ul":
            out.append("<ul>" + "".join("<li>%s</li>" % _inline_html(i) for i in block[1]) + "</ul>")
        elif kind == "toc":
            out.append("<ul>")
            for h in doc.headings():
                if h[2]:
                    out.append('<li style="margin-left:%dem"><a href="#%s">%s</a></li>' % (
                        2 * (h[1] - 1), h[4], html.escape(_heading_text(h))))
            out.append("</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# -- data read from the code --------------------------------------------------
def name_of(uid_value):
    return uid.UID_NAMES.get(uid_value, uid_value)


def storage_sop_classes():
    """The Storage SOP classes the gateway creates, in IODS order, once each."""
    seen = []
    for iod in IODS.values():
        if iod.sop_class_uid not in seen:
            seen.append(iod.sop_class_uid)
    return seen


def proposed_contexts():
    """[(abstract syntax, transfer syntax)] the storage association proposes
    when the queue holds an object of every IOD, each recorded in its IOD's
    default transfer syntax (iod.default_transfer_syntax): acse.propose over
    what the SCU adds (Verification) and those, one transfer syntax per
    context."""
    objects = [(acse.VERIFICATION, uid.IMPLICIT_VR_LITTLE_ENDIAN)]
    for name, iod in IODS.items():
        pair = (iod.sop_class_uid, TRANSFER_SYNTAXES[default_transfer_syntax(name)][0])
        if pair not in objects:
            objects.append(pair)
    return [(abstract, ts) for _, abstract, syntaxes in acse.propose(objects) for ts in syntaxes]


def _takes(transfer_syntax, iod):
    try:
        check_transfer_syntax(transfer_syntax, iod, IODS[iod].pixel_formats[0])
    except ValueError:
        return False
    return True


def verification_contexts():
    """What an association opened only for C-ECHO proposes (console `echo`)."""
    objects = [(acse.VERIFICATION, uid.IMPLICIT_VR_LITTLE_ENDIAN)]
    return [(abstract, ts) for _, abstract, syntaxes in acse.propose(objects) for ts in syntaxes]


def status_pattern(mask, value):
    """'B0xx' for mask 0xFF00, value 0xB000; 'any other' for mask 0."""
    if mask == 0:
        return "any other"
    digits = ""
    for shift in (12, 8, 4, 0):
        digits += "%X" % ((value >> shift) & 0xF) if (mask >> shift) & 0xF == 0xF else "x"
    return digits


def tls_versions():
    """(minimum, maximum) TLS versions of the SCU's context (hal.tcp.tls_context)."""
    import ssl

    context = tls_context(verify=False)

    def name(version):
        if version == ssl.TLSVersion.MAXIMUM_SUPPORTED:
            return "the newest the host's OpenSSL offers (%s)" % ("TLS 1.3" if ssl.HAS_TLSv1_3 else "TLS 1.2")
        return version.name.replace("TLSv", "TLS ").replace("_", ".")

    return name(context.minimum_version), name(context.maximum_version)


def default_text(value):
    return "(none)" if value is None else json.dumps(value)


def keys_of(section):
    return [k for k in config.SCHEMA if k.split(".")[0] == section]


def config_rows(keys):
    return [("`%s`" % k, default_text(config.SCHEMA[k][0]), config.SCHEMA[k][2]) for k in keys]


def all_config_rows():
    """Every key's row, section by section in SCHEMA's order."""
    sections = []
    for key in config.SCHEMA:
        section = key.split(".")[0]
        if section not in sections:
            sections.append(section)
    rows = []
    for section in sections:
        rows += config_rows(keys_of(section))
    return rows


# The README's table of configuration keys is generated too, between these
# two lines (modgate conformance --readme README.md rewrites it).
README_BEGIN = "<!-- config keys: generated by `modgate conformance --readme README.md` -->"
README_END = "<!-- end of config keys -->"


def readme_table():
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for row in all_config_rows():
        lines.append("| %s |" % " | ".join(cell.replace("|", "\\|") for cell in row))
    return "\n".join(lines)


def update_readme(path):
    """Rewrite the generated key table in the README at path; 0 on success."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        sys.stderr.write("modgate conformance: %s has no %s ... %s block\n" % (path, README_BEGIN, README_END))
        return 2
    text = text[: start + len(README_BEGIN)] + "\n" + readme_table() + "\n" + text[end:]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return 0


def example_sdps():
    """[(flow name, SDP text)] for the example flows."""
    defaults = config.defaults()
    host, port, ttl = defaults["rtv.host"], defaults["rtv.port"], defaults["rtv.ttl"]
    v = EXAMPLE_VIDEO
    flows = [("video (ST 2110-20)", sdp.video_sdp(host, port, v["width"], v["height"], v["rate"], v["sampling"],
                                                  v["depth"], ttl=ttl, source_host=EXAMPLE_SOURCE))]
    flows.append(("DICOM metadata (PS3.22)", sdp.metadata_sdp(host, defaults["rtv.metadata_port"], ttl=ttl,
                                                              source_host=EXAMPLE_SOURCE)))
    return flows


# -- the statement ------------------------------------------------------------
def build():
    doc = Document("modgate DICOM Conformance Statement")
    defaults = config.defaults()
    ae_title = defaults["station.ae_title"]

    doc.p("modgate %s. Generated by `modgate conformance` from the firmware's own tables; do not edit by hand "
          "(regenerate with `%s`)." % (__version__, REGENERATE))

    doc.heading(1, "Conformance Statement Overview")
    doc.p("modgate is the firmware of a modality gateway box. It takes frames from an imaging modality's "
          "acquisition hardware (an endoscopy tower, an ultrasound cart, a video microscope), encodes them as "
          "DICOM image objects, keeps each object in a crash-safe spool on the box and sends it to a PACS with "
          "C-STORE; at the same time it can stream the live picture on the network as DICOM real-time video "
          "(PS3.22). It initiates associations only; it accepts none.")
    doc.heading(2, "Network Services")
    rows = [("Transfer", "", "")]
    rows += [(name_of(sop_class), "Yes", "No") for sop_class in storage_sop_classes()]
    rows += [("Workflow Management", "", ""), (name_of(uid.MODALITY_WORKLIST_FIND), "Yes", "No")]
    rows += [("Verification", "", ""), (name_of(acse.VERIFICATION), "Yes", "No")]
    doc.table(("SOP Class", "User of Service (SCU)", "Provider of Service (SCP)"), rows)
    rows = [("Video (SMPTE ST 2110-20 flow)", "Yes", "No")]
    rows += [("%s (DICOM metadata flow)" % name_of(value), "Yes", "No") for value in metadata.RTV_SOP_CLASSES.values()]
    doc.table(("Real-Time Communication (PS3.22)", "Sender", "Receiver"), rows)
    doc.heading(2, "Media Services")
    doc.p("None: modgate reads and writes no DICOM interchange media (no Media Storage Application Profile). "
          "The Part 10 files in its spool are internal to the box.")

    doc.heading(1, "Table of Contents")
    doc.toc()

    doc.heading(1, "Introduction")
    doc.heading(2, "Revision History")
    doc.table(("Document version", "modgate version", "Description"),
              [(__version__, __version__, "generated from the code of this version")])
    doc.heading(2, "Audience and Remarks")
    doc.p("For those who connect modgate to a PACS or to a real-time video receiver: integrators, PACS "
          "administrators, network engineers. It assumes a working knowledge of DICOM. A Conformance Statement "
          "is a first check of compatibility between products; it does not guarantee interoperability, which "
          "should be verified on site.")
    doc.heading(2, "Abbreviations")
    doc.table(("Term", "Meaning"), [
        ("AE", "Application Entity"), ("DIMSE", "DICOM Message Service Element"),
        ("IOD", "Information Object Definition"), ("PDU", "Protocol Data Unit"),
        ("RTP", "Real-time Transport Protocol (RFC 3550)"), ("SCU / SCP", "Service Class User / Provider"),
        ("SDP", "Session Description Protocol (RFC 4566)"), ("SOP", "Service-Object Pair"),
        ("TLS", "Transport Layer Security"), ("UID", "Unique Identifier")])
    doc.heading(2, "References")
    doc.p("DICOM PS3.2 (conformance), PS3.3 (IODs), PS3.4 (service classes), PS3.5 (encoding), PS3.7 (DIMSE), "
          "PS3.8 (upper layer), PS3.15 (security profiles), PS3.22 (real-time communication); SMPTE ST 2110-10, "
          "-20, -21; RFC 3550, RFC 4175, RFC 4566.")

    _networking(doc, defaults, ae_title, metadata)

    doc.heading(1, "Media Interchange")
    doc.p("Not supported.")

    _character_sets(doc)
    _security(doc, defaults)
    _annexes(doc)
    return doc


def _context_rows(contexts):
    return [(name_of(a), "`%s`" % a, name_of(ts), "`%s`" % ts, "SCU", "None") for a, ts in contexts]


CONTEXT_HEADERS = ("Abstract Syntax", "Abstract Syntax UID", "Transfer Syntax", "Transfer Syntax UID", "Role",
                   "Extended Negotiation")


def _networking(doc, defaults, ae_title, metadata):
    timeouts = Timeouts()
    doc.heading(1, "Networking")
    doc.heading(2, "Implementation Model")
    doc.heading(3, "Application Data Flow")
    doc.pre("""\
 acquisition --frames--> recorder --Part 10 file--> spool (flash) --> %(ae)s AE --C-STORE--> PACS (Storage SCP)
 (modality)              (encoder)                                   (Storage SCU)  --C-ECHO-->
         \\
          +--frames--> real-time sender --RTP/UDP--> receivers (PS3.22), described by SDP files
 technician --serial console--> configuration, echo, record start|stop, queue""" % {"ae": ae_title})
    doc.p("The recorder turns each clip into one DICOM object and commits it to the spool (written, synced, "
          "renamed into the queue). The Storage SCU AE sends the queue, oldest first, over one association at "
          "a time, and removes an object only after a success or warning status. The console's `echo` command "
          "(and the host utility `modgate echo`) verifies the PACS with C-ECHO. The real-time sender streams "
          "frames as they are acquired, independent of the spool.")
    doc.heading(3, "Functional Definition of AEs")
    doc.p("Storage SCU AE (AE title `%s` by default, config `station.ae_title`): opens an association to the "
          "configured PACS whenever the spool holds objects, proposes the presentation contexts those objects "
          "need, sends each with C-STORE, and releases the association after `pacs.idle_release` idle seconds "
          "(default %s). It also sends C-ECHO on request. It never accepts an association." % (
              ae_title, defaults["pacs.idle_release"]))
    doc.p("Real-time sender: not a DICOM AE in the PS3.8 sense; it sends RTP flows to the configured destination "
          "and publishes their SDP (section Real-Time Communication).")
    doc.heading(3, "Sequencing of Real-World Activities")
    doc.p("Recording and sending are decoupled by the spool: a clip can be sent only after it has been committed, "
          "and recording continues while the PACS is unreachable, until the spool is full (`spool.max_bytes`), "
          "when recording is refused and an alarm raised. One recording session is one study with one series; "
          "its clips are instances numbered from 1.")

    doc.heading(2, "AE Specifications")
    doc.heading(3, "Storage SCU AE Specification")
    doc.heading(4, "SOP Classes")
    rows = [(name_of(s), "`%s`" % s, "Yes", "No") for s in [acse.VERIFICATION, uid.MODALITY_WORKLIST_FIND]
            + storage_sop_classes()]
    doc.table(("SOP Class Name", "SOP Class UID", "SCU", "SCP"), rows)
    doc.heading(4, "Association Policies")
    doc.p("General: the application context name is `%s` (PS3.7 A.2.1). The maximum PDU length modgate "
          "receives (the Maximum Length, PS3.8 D.1) is `pacs.maximum_length` (default %d); it sends PDUs no "
          "longer than min(the peer's Maximum Length, its own)." % (pdu.APPLICATION_CONTEXT_NAME,
                                                                    defaults["pacs.maximum_length"]))
    doc.p("Number of associations: one storage association at a time (one sender); the console's `echo` opens "
          "a second, short-lived one.")
    doc.table(("Maximum number of simultaneous associations", "Value"),
              [("Initiated, storage", "1"), ("Initiated, verification (console echo)", "1"),
               ("Initiated, worklist query", "1"), ("Accepted", "0")])
    doc.p("Asynchronous nature: no Asynchronous Operations Window is proposed, so one operation is outstanding "
          "at a time (PS3.7 D.3.3.3).")
    doc.p("Implementation identifying information (PS3.7 D.3.3.2):")
    doc.table(("Item", "Value"), [("Implementation Class UID", "`%s`" % uid.IMPLEMENTATION_CLASS_UID),
                                  ("Implementation Version Name", "`%s`" % uid.IMPLEMENTATION_VERSION_NAME)])
    doc.heading(4, "Association Initiation Policy")
    doc.heading(5, "Activity: Send Spooled Objects")
    doc.p("Description and sequencing: whenever the queue is not empty the sender opens an association (if none "
          "is open), proposing contexts for the SOP classes of the next %d queued objects, and sends the "
          "oldest object. A new association is opened when the next object's SOP class has no accepted "
          "context, when PACS settings were saved on the console, or after an association was lost. A lost "
          "association, a rejection or a timeout leaves the object in the queue with its failure count "
          "unchanged; the next attempt follows after a delay that doubles from `spool.backoff_initial` (default "
          "%s s) to at most `spool.backoff_max` (default %s s), with random jitter of up to half the delay." % (
              sender.LOOK_AHEAD, defaults["spool.backoff_initial"], defaults["spool.backoff_max"]))
    doc.p("Proposed presentation contexts: each SOP class is proposed with every transfer syntax in a context "
          "of its own, so the SCP may accept any one. The table shows the association when the queue holds an "
          "object of every IOD; an association proposes only the SOP classes queued (plus Verification). "
          "Objects are recorded in their IOD's default transfer syntax unless `clip.transfer_syntax` says "
          "otherwise (the table below).")
    doc.table(CONTEXT_HEADERS, _context_rows(proposed_contexts()))
    doc.p("The host utility `modgate store` proposes, in addition, each file's own transfer syntax.")
    doc.p("Compressed objects (`clip.transfer_syntax`; by default the IOD's: %s): an object recorded in a compressed "
          "transfer syntax is proposed in that syntax (with the uncompressed ones beside it, for the other objects "
          "of its class). The box never transcodes: when the SCP does not accept the object's syntax, the object "
          "stays in the queue, counted against nothing, with the `transfer syntax` alarm naming the syntax and "
          "the SOP class; the queue goes on with the objects after it, and it is tried again when the PACS "
          "settings change or after `spool.backoff_max`. The syntaxes and which IODs take them:" %
          ", ".join("`%s` for %s" % (default_transfer_syntax(n), n) for n in sorted(IODS)))
    rows = []
    for key, (ts, kind) in sorted(TRANSFER_SYNTAXES.items()):
        takes = [name for name in sorted(IODS) if _takes(key, name)]
        rows.append(("`%s`" % key, name_of(ts), "`%s`" % ts, ", ".join(takes)))
    doc.table(("clip.transfer_syntax", "Transfer Syntax", "UID", "IODs"), rows)
    doc.p("H.264 objects (PS3.5 8.2.8): the whole bitstream (Annex B, SPS and PPS before every IDR picture) in "
          "one fragment after an empty Basic Offset Table; Photometric Interpretation YBR_PARTIAL_420 (BT.601, "
          "limited range, as the VUI says); High Profile at level 4.1 (4.2 for `h264-hp42`); Number of Frames "
          "the number of access units; Lossy Image Compression 01, method ISO_14496_10, and the ratio. A frame "
          "size or rate the syntax cannot carry (over 1920x1080, over the level's macroblock rate, or outside "
          "Blu-ray's formats for `h264-bd`) is refused when the configuration is saved. JPEG Baseline objects "
          "(PS3.5 8.2.1): one fragment a frame, YBR_FULL_422 for colour, MONOCHROME2 for grayscale, method "
          "ISO_10918_1.")
    doc.p("SOP specific conformance, Storage SOP classes (PS3.4 B.2): each object is sent from the spool file in "
          "PDU-sized pieces, with Priority MEDIUM. When the SCP accepts a SOP class only in %(i)s, an object "
          "recorded in %(e)s is converted while it streams out (firmware/net/convert.py: element headers "
          "rewritten, values untouched, sequences and items sent with undefined length and delimiters, PS3.5 "
          "7.5.1); the data set's content does not change. An object whose SOP class the SCP accepted in no "
          "context is not sent and counts as a failure. How each C-STORE-RSP status is handled (PS3.7 C.1.2; "
          "the first matching row wins):" % {"e": name_of(uid.EXPLICIT_VR_LITTLE_ENDIAN),
                                              "i": name_of(uid.IMPLICIT_VR_LITTLE_ENDIAN)})
    rows = []
    for mask, value, category, meaning in dimse.STATUS_RANGES:
        rows.append((status_pattern(mask, value), category, meaning, sender.DISPOSITION[category][1]))
    doc.table(("Status code", "Class", "Meaning", "Behaviour"), rows)
    doc.p("Status codes reported by their own meaning in the log and on the console:")
    rows = [("%04X" % code, dimse.status_class(code)[0], meaning) for code, meaning in sorted(dimse.STATUS_MEANINGS.items())]
    doc.table(("Status", "Class", "Meaning"), rows)
    doc.p("A response with an unexpected command or message ID, a malformed PDU or a timeout in the middle of a "
          "message aborts the association (A-ABORT); it is never reused. Timeouts (config keys; the ARTIM wait "
          "after an abort is fixed):")
    rows = config_rows(["pacs.connect_timeout", "pacs.acse_timeout", "pacs.dimse_timeout", "pacs.network_timeout",
                        "pacs.idle_release"])
    rows.append(("ARTIM (PS3.8 9.1.5)", default_text(timeouts.artim), "seconds to wait for the peer to close "
                                                                        "after an A-ABORT"))
    doc.table(("Timeout", "Default (s)", "Meaning"), rows)
    doc.heading(5, "Activity: Verify the PACS")
    doc.p("The console's `echo` command opens an association proposing only Verification, sends one C-ECHO, "
          "reports the status and releases the association.")
    doc.table(CONTEXT_HEADERS, _context_rows(verification_contexts()))
    _worklist(doc, defaults)
    _mpps(doc, defaults)
    _commitment(doc, defaults)
    doc.heading(4, "Association Acceptance Policy")
    doc.p("With `pacs.commit` true and `pacs.commit_port` set, the AE listens on that port for one thing only: "
          "the Storage Commitment report a PACS sends on an association it opens (PS3.4 J.3.3). One association "
          "is served at a time. Everything else is refused and logged (firmware/listener.py):")
    doc.table(("Condition", "Answer"), [
        ("Protocol version without version 1 (bit 0)",
         "A-ASSOCIATE-RJ rejected-permanent, service-provider (ACSE), protocol-version-not-supported"),
        ("Application context other than %s" % pdu.APPLICATION_CONTEXT_NAME,
         "A-ASSOCIATE-RJ rejected-permanent, service-user, application-context-name-not-supported"),
        ("Called AE title other than `station.ae_title`", "A-ASSOCIATE-RJ rejected-permanent, service-user, "
                                                          "called-AE-title-not-recognized"),
        ("Calling AE title other than `pacs.ae_title`", "A-ASSOCIATE-RJ rejected-permanent, service-user, "
                                                        "calling-AE-title-not-recognized"),
        ("Peer address not one that `pacs.host` resolves to", "A-ASSOCIATE-RJ rejected-permanent, service-user, "
                                                              "no-reason-given"),
        ("Any abstract syntax but Storage Commitment Push Model (Storage, Verification...)",
         "presentation context rejected: abstract-syntax-not-supported; no C-STORE can reach the box"),
        ("A transfer syntax other than Explicit or Implicit VR Little Endian",
         "presentation context rejected: transfer-syntaxes-not-supported"),
        ("Role selection proposing the SCU role only (the PACS would ask the AE to commit)",
         "presentation context rejected: user-rejection"),
        ("A message on a presentation context that was not accepted", "A-ABORT"),
        ("No A-ASSOCIATE-RQ within `pacs.acse_timeout`, or a malformed PDU", "connection closed (A-ABORT for a "
                                                                            "malformed PDU)"),
        ("A DIMSE request other than the N-EVENT-REPORT of storage commitment",
         "its response with status %04X (Unrecognized Operation)" % dimse.UNRECOGNIZED_OPERATION),
        ("With `pacs.tls`: a peer without a certificate issued by `pacs.ca`", "TLS handshake refused"),
    ])
    doc.p("The PACS may propose SCP/SCU Role Selection (PS3.7 D.3.3.4) for the class, as the association's "
          "requestor in the SCP role; the AE answers SCU role 0, SCP role 1. A proposal without role selection is "
          "accepted as well.")
    doc.table(CONTEXT_HEADERS, _context_rows(
        [(a, ts) for _, a, syntaxes in acse.propose(commitment.CONTEXTS) for ts in syntaxes]))

    doc.heading(2, "Network Interfaces")
    doc.heading(3, "Physical Network Interface")
    doc.p("The board's Ethernet interface (config `network.interface`, default the board's), through the "
          "operating system's TCP/IP stack.")
    doc.heading(3, "Additional Protocols")
    doc.p("DNS when `pacs.host` is a host name; UDP for the real-time flows (to the multicast group or unicast "
          "address `rtv.host`). The interface's addressing (DHCP or static) is the operating system's.")
    doc.heading(3, "IPv4 and IPv6 Support")
    addresses = sorted(set(re.findall(r"^c=IN (IP[46]) ", "".join(t for _, t in example_sdps()), re.M)))
    doc.p("DICOM associations: IPv4 and IPv6 (`pacs.host` takes an IPv4 or IPv6 literal or a name, resolved to "
          "either). Real-time flows: the SDP writer describes %s destinations." % " and ".join(
              a.replace("IP", "IPv") for a in addresses))
    doc.heading(3, "DICOM TLS")
    low, high = tls_versions()
    doc.p("With `pacs.tls` true, the association runs over TLS (PS3.15 Annex B): %s up to %s; the SCP's "
          "certificate is verified against `pacs.ca` and its name or address against `pacs.host`; `pacs.cert` "
          "and `pacs.key` give a client certificate. This meets the protocol requirements of the BCP 195 RFC "
          "8996 TLS Secure Transport Connection Profile (TLS 1.2 or newer, no fallback to older versions); the "
          "cipher suites are those the host's OpenSSL offers by default for these versions." % (low, high))

    doc.heading(2, "Configuration")
    doc.p("Every key is set in the JSON configuration file or on the serial console (`set KEY VALUE`, `save`), "
          "checked before it is applied. PACS settings take effect from the next C-STORE (a new association), "
          "the others from the next clip.")
    doc.heading(3, "AE Title / Presentation Address Mapping")
    doc.table(("AE", "AE title", "Address"), [
        ("Local: Storage SCU", "`station.ae_title` (default `%s`)" % ae_title, "the box's address"),
        ("Remote: Storage SCP", "`pacs.ae_title` (default `%s`)" % defaults["pacs.ae_title"],
         "`pacs.host`:`pacs.port` (default %s:%s)" % (defaults["pacs.host"], defaults["pacs.port"])),
        ("Remote: Modality Worklist SCP", "`worklist.ae_title` (default `%s`)" % defaults["worklist.ae_title"],
         "`worklist.host`:`worklist.port` (default none: no worklist)"),
        ("Remote: MPPS SCP", "`mpps.ae_title` (default `%s`)" % defaults["mpps.ae_title"],
         "`mpps.host`:`mpps.port` (default none: no MPPS)")])
    doc.heading(3, "Parameters")
    doc.p("Every configuration key, its default and its meaning (firmware/config.py SCHEMA):")
    doc.table(("Key", "Default", "Meaning"), all_config_rows())

    _realtime(doc, defaults, metadata)


def _worklist(doc, defaults):
    """Activity: Query the Modality Worklist, from services/worklist.py's
    tables."""
    doc.heading(5, "Activity: Query the Modality Worklist")
    doc.p("Description and sequencing: with `worklist.host` set, the AE queries the Modality Worklist SCP every "
          "`worklist.refresh` seconds (default %s; 0: only on command) and when the technician types `worklist "
          "refresh` on the console, on an association of its own that is released after the query. The last "
          "good list is kept on the box; a failed query keeps it and raises an alarm. At most "
          "`worklist.max_matches` matches (default %d) are kept: at the next pending response a C-CANCEL-RQ is "
          "sent (PS3.7 9.3.2.3) and the responses that follow are read and dropped. Each identifier is read "
          "into a bound of %d bytes; a larger one aborts the association." % (
              defaults["worklist.refresh"], defaults["worklist.max_matches"], worklist.MAX_IDENTIFIER))
    contexts = [(a, ts) for _, a, syntaxes in acse.propose(worklist.CONTEXTS) for ts in syntaxes]
    doc.table(CONTEXT_HEADERS, _context_rows(contexts))
    doc.p("Matching keys (PS3.4 K.6.1.2.1): Scheduled Station AE Title = `station.ae_title`; Modality = "
          "`worklist.modality`, else the configured IOD's modality; Scheduled Procedure Step Start Date = "
          "today (the box's clock). The host utility `modgate worklist` also takes a date range, a Patient ID "
          "and an Accession Number. Every return key is sent empty (universal matching):")
    rows = [(keyword, tags.tag_str(tag), "") for keyword, tag in worklist.TOP_KEYS]
    rows += [(keyword, tags.tag_str(tag), "in the Scheduled Procedure Step Sequence") for keyword, tag
             in worklist.STEP_KEYS]
    rows += [("RequestedProcedureCodeSequence", tags.tag_str(tags.RequestedProcedureCodeSequence),
              "CodeValue, CodingSchemeDesignator, CodeMeaning")]
    doc.table(("Return key", "Tag", "Where"), rows)
    doc.p("Character sets of the responses: %s; a response without Specific Character Set whose text is not "
          "ASCII is read as UTF-8 when it is valid UTF-8, else as ISO_IR 100. Any other character set makes the "
          "item unreadable (the query fails and says so) rather than shown garbled." % ", ".join(
              "`%s`" % c for c in sorted(decode.CHARSETS) if c))
    doc.p("C-FIND response statuses:")
    doc.table(("Status", "Meaning"), [("%04X" % code, meaning) for code, meaning in
                                      sorted(worklist.STATUS_MEANINGS.items())] +
              [("Cxxx", worklist.status_meaning(0xC000))])
    doc.p("Selecting an item (`worklist select N`) sets these configuration keys, which every object recorded "
          "afterwards carries (the Requested Procedure ID also as Study ID, and the Scheduled Procedure Step ID "
          "and Description with the Requested Procedure ID in the Request Attributes Sequence, PS3.3 C.7.3.1):")
    doc.table(("Worklist attribute", "Configuration key"), [(keyword, "`%s`" % key) for key, keyword
                                                            in worklist.SELECT_KEYS])


def _mpps(doc, defaults):
    """Activity: Report the Procedure Step, from firmware/procedure.py and
    services/mpps.py."""
    doc.heading(5, "Activity: Report the Procedure Step (MPPS)")
    doc.p("Description and sequencing: with `mpps.host` set, a procedure begun on the console (`worklist select "
          "N`, or `procedure new` from the typed patient keys, for which the AE makes the Study Instance UID) "
          "gets a Modality Performed Procedure Step SOP Instance UID from `station.uid_root`, which every clip "
          "of the procedure carries in its Referenced Performed Procedure Step Sequence (PS3.3 C.7.3.1). When "
          "its first clip starts, an N-CREATE with status IN PROGRESS is queued; `procedure end` (or `exam end`) "
          "queues an N-SET COMPLETED and `procedure discontinue [CODE]` an N-SET DISCONTINUED with the "
          "Discontinuation Reason Code (PS3.16 CID 9300, default %s), each with the Performed Series Sequence "
          "listing every instance recorded in the procedure (one series per procedure, kept across a restart). A "
          "procedure ended with no clip kept is DISCONTINUED (%s), never COMPLETED with no series. Messages are written "
          "to the spool (`mpps/`, fsynced) before the console answers and sent oldest first on an association "
          "of their own to `mpps.ae_title` at `mpps.host`:`mpps.port`, retried with backoff while the SCP "
          "cannot be reached: an N-SET never goes before its N-CREATE. An N-CREATE answered 0111 (Duplicate "
          "SOP Instance) was done before and counts as done. After `spool.max_failures` failure statuses a "
          "message, and the later ones of the same step (those queued afterwards too), are set aside with the "
          "`%s` alarm, and the queue goes on with the next; `procedure retry` queues them again. A procedure "
          "with clips cannot be replaced by another `worklist select` until it is ended. With `mpps.tls` the "
          "association uses DICOM TLS with `pacs.ca`, `pacs.cert` and `pacs.key`." % (
              procedure.DEFAULT_REASON, procedure.DEFAULT_REASON, procedure.SET_ASIDE_ALARM))
    contexts = [(a, ts) for _, a, syntaxes in acse.propose(mpps.CONTEXTS) for ts in syntaxes]
    doc.table(CONTEXT_HEADERS, _context_rows(contexts))
    doc.p("Attributes of the N-CREATE (PS3.4 Table F.7.2-1), from the worklist item (or the typed keys): "
          "Scheduled Step Attributes Sequence (Study Instance UID, Accession Number, Requested Procedure ID "
          "and Description, Scheduled Procedure Step ID and Description), Patient's Name, ID, Birth Date and "
          "Sex, Procedure Code Sequence (the Requested Procedure Code Sequence), Study ID, Modality (the "
          "IOD's), Performed Station AE Title and Name, Performed Procedure Step ID, Start Date and Time, "
          "Description and Type Description; the End Date and Time, Performed Series Sequence and the other "
          "Type 2 attributes empty. The final N-SET: End Date and Time, the status, the Performed Series "
          "Sequence (an item per series: Series Instance UID, Protocol Name from the Scheduled Procedure Step "
          "Description, else the Requested Procedure Description, else the IOD's name, and the Referenced Image "
          "Sequence of every instance's SOP Class and Instance UID), and for DISCONTINUED the reason code.")
    doc.p("Discontinuation reasons the console takes (CID 9300's codes for a modality's step, those of CID 9301 "
          "that it includes):")
    doc.table(("Code Value", "Coding Scheme", "Code Meaning"), [
        (code, "DCM", meaning) for code, meaning in sorted(procedure.DISCONTINUATION_REASONS.items())])


def _commitment(doc, defaults):
    """Activity: Request Storage Commitment, from services/commitment.py's
    tables and firmware/committer.py's behaviour."""
    doc.heading(5, "Activity: Request Storage Commitment")
    doc.p("Description and sequencing: with `pacs.commit` true (default %s), the association that stores the "
          "objects also proposes the Storage Commitment Push Model SOP Class (SCU role). An object the PACS "
          "stored (success or warning) is not deleted: it waits in the spool's `stored/` folder. When the queue "
          "is empty, or after %d objects, the AE sends an N-ACTION (Action Type ID %d, Requested SOP Instance "
          "`%s`) naming at most %d of them by SOP Class and Instance UID under a new Transaction UID, which is "
          "written to the spool (fsynced) before the request leaves. The N-EVENT-REPORT may come on that "
          "association (it is then kept open while a report is due and no listener is configured) or on a new "
          "association from the PACS to `pacs.commit_port` (Association Acceptance Policy). Committed objects "
          "leave the spool (or move to `sent/` while `spool.retain_sent` allows); objects in the Failed SOP "
          "Sequence go back to the queue with one more failure: they are sent and requested again, and after "
          "`spool.max_failures` failures they are quarantined with an alarm. A transaction without a report "
          "within `pacs.commit_timeout` seconds (default %s) is requested again under a new Transaction UID. "
          "A report for a transaction no longer under way is answered and ignored. A PACS that does not accept "
          "the context or refuses the N-ACTION raises the `commitment` alarm; the objects keep waiting. Turning "
          "`pacs.commit` off releases what waited." % (
              defaults["pacs.commit"], commitment.MAX_REFERENCES, commitment.REQUEST_STORAGE_COMMITMENT,
              uid.STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE, commitment.MAX_REFERENCES, defaults["pacs.commit_timeout"]))
    contexts = [(a, ts) for _, a, syntaxes in acse.propose(commitment.CONTEXTS) for ts in syntaxes]
    doc.table(CONTEXT_HEADERS, _context_rows(contexts))
    doc.p("Failure Reasons in a report (PS3.3 C.14.1.1), as the log, the alarm and `queue list` show them:")
    doc.table(("Failure Reason", "Meaning"), [("%04X" % code, meaning) for code, meaning in
                                              sorted(commitment.FAILURE_REASONS.items())])
    doc.p("The N-EVENT-REPORT is answered with status 0000 once it has been read (a power cut before it is "
          "applied only means the transaction is requested again), %04X for a report that cannot be read, and "
          "any other DIMSE request from the PACS with %04X (Unrecognized Operation). Reports are read into a "
          "bound of %d bytes." % (commitment.INVALID_ARGUMENT_VALUE, dimse.UNRECOGNIZED_OPERATION,
                                  commitment.MAX_REPORT))


def _realtime(doc, defaults, metadata):
    doc.heading(2, "Real-Time Communication (PS3.22)")
    doc.heading(3, "Flows")
    video_pt = inspect.signature(sdp.video_sdp).parameters["payload_type"].default
    rows = [("Video", "SMPTE ST 2110-20 uncompressed video (RFC 4175), General Packing Mode",
             "%d (dynamic)" % video_pt, "%d Hz" % rtp.CLOCK_RATE)]
    rows.append(("DICOM metadata", "PS3.22 metadata flow: the DICOM attributes of the video",
                 "%d (dynamic)" % metadata.PAYLOAD_TYPE, "%d Hz" % rtp.CLOCK_RATE))
    doc.table(("Flow", "Format", "RTP payload type", "RTP clock"), rows)
    doc.p("Destination: `rtv.host`:`rtv.port` for the video and `rtv.host`:`rtv.metadata_port` for the metadata "
          "(default %s:%s and :%s; multicast TTL `rtv.ttl`, default %s)." % (
              defaults["rtv.host"], defaults["rtv.port"], defaults["rtv.metadata_port"], defaults["rtv.ttl"]))
    doc.p("Real-time SOP classes of the metadata flow:")
    doc.table(("SOP Class", "SOP Class UID", "IOD"),
              [(name_of(value), "`%s`" % value, "`%s`" % key) for key, value in metadata.RTV_SOP_CLASSES.items()])
    doc.heading(3, "Metadata Content")
    doc.p("Each metadata payload holds the RTV Meta Information, the dynamic part (Current Frame Functional "
          "Groups, PS3.3 C.7.6.27: the frame's Frame Content and Time of Frame with its Frame Origin Timestamp) "
          "and, on the first frame and then once a second, the static part: the other modules of the Real-Time "
          "Video Endoscopic Image IOD (PS3.3 A.32.9) or Real-Time Video Photographic Image IOD (PS3.3 A.32.10), "
          "the same modules in both. The modules, their usage in the IOD and what modgate writes in them:")
    doc.table(("Module", "PS3.3", "Usage", "Content"),
              [(name, section, usage, content) for name, section, usage, content in metadata.STATIC_MODULES])
    doc.p("Optional modules not written: Clinical Trial Subject, Patient Study, Clinical Trial Study, Clinical "
          "Trial Series, General Reference, Device, Specimen (required only for a specimen). Rows and Columns "
          "(0028,0010-0011) are written beside them, though not in the IODs' modules, for receivers that size "
          "frames from the metadata.")
    doc.heading(3, "Session Description (SDP)")
    doc.p("Each flow is described by an SDP (RFC 4566) session description, as PS3.22 requires. Receivers "
          "obtain them as files: `video.sdp` and `metadata.sdp`, written by `modgate stream` into its --sdp-dir "
          "folder and by the gateway (`modgate run`, console `stream start`) into its spool folder, from where "
          "a receiver or an operator picks them up (FFmpeg, for one, opens such a "
          "file with `-protocol_whitelist file,udp,rtp -i FILE.sdp`). Example for %dx%d %s at %s frames/s to "
          "the default destinations:" % (
              EXAMPLE_VIDEO["width"], EXAMPLE_VIDEO["height"], EXAMPLE_VIDEO["sampling"],
              sdp.exact_frame_rate(EXAMPLE_VIDEO["rate"])))
    for name, text in example_sdps():
        doc.p("SDP of the %s flow:" % name)
        doc.pre(text.replace("\r\n", "\n"))
    doc.heading(3, "Packetisation")
    doc.p("Video: datagrams of at most %d bytes of UDP payload, RTP header included (ST 2110-10 standard UDP "
          "size limit), each with an extended sequence number and whole pgroups under one sample row data "
          "header per line segment; the last datagram of a frame has the RTP marker bit set. When a line "
          "splits into equal segments that each fill at least 3/4 of a datagram, every datagram carries one "
          "segment and all have the same size; otherwise datagrams are filled and may continue into the next "
          "line." % st2110_20.MAX_DATAGRAM)
    doc.p("DICOM metadata: " + metadata.PACKETIZATION_RULE)
    doc.heading(3, "Timing (SMPTE ST 2110-21)")
    doc.p("The video flow is sent as a wide sender, Type W of ST 2110-21:2022 7.1.4 (`TP=%s`), progressive "
          "frames only, on the media clock's frame grid:" % pacing.WIDE)
    doc.ul([
        "Frame N goes in the slot of the instant N x T_FRAME since the SMPTE epoch (1970-01-01 00:00:00 "
        "TAI) of the box's clock; its RTP timestamp is the 90 kHz media clock at that instant, modulo 2^32 "
        "(ST 2110-10, `a=mediaclk:direct=0`). Its read schedule starts at TPR_0 = N x T_FRAME + TR_OFFSET "
        "(6.2). A frame not ready by its slot's TPR_0 goes in a later slot; the slots passed over are "
        "counted (`frame slots missed`).",
        "TR_OFFSET is TRO_DEFAULT (6.3.2: %d/%d of T_FRAME for images of %d lines or more, %d/%d below) plus "
        "up to %d ms, as much as the virtual receiver buffer holds with %d/%d of VRX_FULL to spare, in whole "
        "microseconds, signalled as `TROFF` in the SDP (8.2); the frame's first datagram is due a quarter of "
        "TRO_DEFAULT after N x T_FRAME, never before it, so it leaves ahead of its read by the rest of "
        "TR_OFFSET: the room a software sender needs for late wake-ups." % (
            pacing.TRO_TALL + (pacing.TALL_LINES,) + pacing.TRO_SHORT
            + (pacing.JITTER_NS // 1000000,) + pacing.VRX_SPARE),
        "The datagrams leave in bursts of at most C_MAX/2, packet j due j x T_FRAME x R_ACTIVE / N after the "
        "first (R_ACTIVE = %d/%d, 6.3.2), a little faster than the linear schedule (6.4) that reads a Type W "
        "sender, so the buffer keeps the lead; it stays under VRX_FULL = max(%d, N / (%d T_FRAME)) (7.1.4, "
        "MAXUDP = %d under the Standard UDP Size Limit) by construction." % (
            pacing.R_ACTIVE + (pacing.VRX_WIDE_OCTETS // pacing.MAXUDP_STANDARD, pacing.VRX_WIDE_RATE,
                               pacing.MAXUDP_STANDARD)),
        "The sender runs the network compatibility model over its own sends (6.6.1: T_DRAIN = T_FRAME / N / "
        "beta, beta = %d/%d) and never lets it hold more than C_MAX = max(%d, N / (%d T_FRAME)); 7.1.4 "
        "defines that C_MAX for flows under 900 000 datagrams a second only, and modgate holds faster flows "
        "to the same formula." % (pacing.BETA + (pacing.CMAX_MIN_WIDE, pacing.CMAX_WIDE_RATE)),
        "Packet j must leave by its read TPR_j (6.6.2). The sender checks every burst against the read of "
        "its first packet once the send call has returned, and counts a frame with a burst after it as late "
        "(`late` in `modgate stream`'s summary, the console's `status` and the log). A late frame did not "
        "meet the Type W model: how often the box's scheduler made it fall short is that count, not a "
        "property this statement can promise.",
    ])
    doc.p("The epoch is the box's TAI clock: its PTP hardware clock where the board has one "
          "(`a=ts-refclk:%s`), else the system clock plus the TAI-UTC offset (`a=ts-refclk:localmac=`). In "
          "the second case the timing holds against the box's own clock, and a receiver that does not share "
          "it can take the flow as an asynchronous receiver only (Type A, 7.2.5). `tools/rtv_receiver.py` "
          "checks a flow against all of the above: C_INST and VRX peaks against C_MAX and VRX_FULL, RTP "
          "timestamps on the epoch, first datagrams after their frame's instant, and every datagram before "
          "its read (the last three where it shares the sender's clock)." % sdp.PTP_TRACEABLE)
    doc.heading(3, "Colour and Depth")
    doc.p("The sampling and bit depth combinations the sender packs (ST 2110-20 6.2); a frame's width must be a "
          "multiple of the pixels in a pgroup:")
    rows = [(sampling, depth, size, pixels) for (sampling, depth), (size, pixels) in sorted(st2110_20.PGROUPS.items())]
    doc.table(("Sampling", "Bit depth", "Bytes per pgroup", "Pixels per pgroup"), rows)
    colorimetry = inspect.signature(sdp.video_sdp).parameters["colorimetry"].default
    doc.p("Colorimetry: `%s` (the SDP's `colorimetry` parameter; see the example above)." % colorimetry)
    doc.p("How the metadata flow describes each acquisition pixel format:")
    rows = [("`%s`" % k, v[0], v[1], v[2]) for k, v in sorted(metadata.PIXEL_DESCRIPTION.items())]
    doc.table(("Pixel format", "Photometric Interpretation", "Bits Allocated", "Bits Stored"), rows)


def _character_sets(doc):
    doc.heading(1, "Support of Character Sets")
    doc.p("modgate writes Specific Character Set (0008,0005) only when a value needs it: text in the default "
          "repertoire (ISO-IR 6, ASCII) is written without it, and any other text as UTF-8 with Specific "
          "Character Set `%s`. Values come from the configuration and the console (patient, study, station "
          "names), are checked against their VR's rules and refused if they break them. modgate receives no "
          "data sets, so it interprets no other character set." % UTF8)


def _security(doc, defaults):
    doc.heading(1, "Security")
    doc.heading(2, "Security Profiles")
    low, _ = tls_versions()
    doc.p("Secure transport: DICOM TLS as described under Network Interfaces (%s or newer, server certificate "
          "verified, optional client certificate). No other PS3.15 profile (user identity negotiation, "
          "de-identification, digital signatures) is supported." % low)
    doc.heading(2, "Association Level Security")
    doc.p("modgate accepts no associations. Its calling AE title is `station.ae_title`; with TLS the PACS can "
          "authenticate the box by its client certificate.")
    doc.heading(2, "Application Level Security")
    doc.p("The serial console asks for a password before anything else; the first session chooses one. It is "
          "stored as a salted `%s` record (PBKDF2-HMAC-SHA256, RFC 8018; %d iterations by default, %d-byte "
          "salt) and never shown or logged. After %d wrong passwords the console locks for %d s; a session "
          "without input for `console.idle_logout` seconds (default %s) is logged out." % (
              crypto.SCHEME, crypto.DEFAULT_ITERATIONS, crypto.SALT_SIZE, shell.MAX_FAILURES,
              shell.LOCKOUT_MS // 1000, defaults["console.idle_logout"]))
    doc.p("Real-time flows are sent unencrypted and unauthenticated, as ST 2110 defines them; keep them on a "
          "trusted network.")


def _annexes(doc):
    doc.heading(1, "Annexes")
    doc.heading(2, "IOD Contents: Created SOP Instances")
    doc.p("The IOD of each clip is config `clip.iod` (firmware/dicom/iod.py); pixel formats as PS3.3 C.7.6.3 "
          "attributes (Samples per Pixel, Photometric Interpretation, Bits Allocated, Bits Stored):")
    rows = []
    for key, iod in IODS.items():
        pixels = "; ".join("%s: %d, %s, %d, %d%s" % ((p,) + PIXEL_FORMATS[p] + (
            " (H.264 only)" if p in CODEC_ONLY_PIXELS else "",)) for p in iod.pixel_formats)
        rows.append(("`%s`" % key, name_of(iod.sop_class_uid), iod.modality, "Yes" if iod.multiframe else "No",
                     pixels))
    doc.table(("`clip.iod`", "SOP Class", "Modality", "Multi-frame", "Pixel formats"), rows)
    doc.p("Every object, and the static part of the real-time metadata, names the box that made it (General "
          "Equipment, PS3.3 C.7.5.1; Enhanced General Equipment, C.7.5.2, in the real-time IODs): Manufacturer "
          "`%s`, Manufacturer's Model Name the board's name, Device Serial Number the board's (the SoC's serial "
          "number where the board has one, else the MAC address of its network interface), Software Versions "
          "`%s`." % (MANUFACTURER, __version__))
    doc.heading(2, "Data Dictionary of Private Attributes")
    doc.p("None: modgate writes no private attributes.")
    doc.heading(2, "Private Transfer Syntaxes")
    doc.p("None.")


def generate(fmt="md"):
    doc = build()
    return render_html(doc) if fmt == "html" else render_md(doc)


def write(fmt="md", out=None):
    """Write the statement to out (a path), or to standard output."""
    text = generate(fmt)
    if out:
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
