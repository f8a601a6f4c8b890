"""The Conformance Statement says what the code does: the presentation
contexts and identity a pynetdicom SCP sees when the gateway stores one
object of every IOD it makes are exactly those in the statement; the shipped
docs/conformance.md is the freshly generated text; both formats generate and
the HTML is well-formed."""

import os
import threading
import time
import xml.dom.minidom

import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

import board
from firmware import config
from tools.receiver import STORED_SYNTAXES
from firmware.gateway import Gateway
from firmware.dicom.iod import IODS
from firmware.net import dimse
from tests.conftest import ROOT, free_port, modgate
from tools import conformance

DOC = os.path.join(ROOT, "docs", "conformance.md")


@pytest.fixture(scope="module")
def statement():
    return conformance.generate("md")


def table_after(text, heading, first_header=None):
    """The rows (lists of cells) of the first table after a heading line
    that ends with heading (and, if given, whose first header cell is
    first_header), before the next heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and line.endswith(heading))
    rows = []
    for line in lines[start + 1 :] + [""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
            continue
        if rows and (first_header is None or rows[0][0] == first_header):
            return rows[2:]  # past the header and the --- line
        rows = []
        if line.startswith("#"):
            break
    raise AssertionError("no table under %r" % heading)


def uid_cell(cell):
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell.strip("`")


def settings(tmp_path, port, iod):
    pixel = IODS[iod].pixel_formats[0]
    cfg = config.defaults()
    cfg.update({
        "acquisition.width": 32, "acquisition.height": 16, "acquisition.pixel": pixel,
        "acquisition.rate": [30, 1], "acquisition.paced": False,
        "clip.iod": iod, "clip.frames": 1 if not IODS[iod].multiframe else 2, "clip.count": 1,
        "pacs.port": port, "pacs.ae_title": "CONFORMANCE", "pacs.connect_timeout": 2.0,
        "spool.root": str(tmp_path / "spool"), "spool.max_bytes": 64 * 1024 * 1024, "spool.min_free_bytes": 0,
        "spool.backoff_initial": 0.05, "spool.backoff_max": 0.3,
    })
    config.validate(cfg)
    return cfg


@pytest.fixture(scope="module")
def on_the_wire(tmp_path_factory):
    """What a pynetdicom SCP saw when the gateway's sender emptied a spool
    holding one clip of every IOD, each recorded by the gateway itself."""
    tmp_path = tmp_path_factory.mktemp("conformance")
    port = free_port()
    for iod in IODS:
        Gateway(settings(tmp_path, port, iod), board.load("host")).recorder.run()
    requests = []
    stored = []

    def on_requested(event):
        r = event.assoc.requestor
        requests.append({
            "contexts": [(c.abstract_syntax, tuple(c.transfer_syntax)) for c in r.requested_contexts],
            "implementation_class_uid": r.implementation_class_uid,
            "implementation_version_name": r.implementation_version_name,
        })

    def on_store(event):
        stored.append(event.request.AffectedSOPClassUID)
        return 0x0000

    ae = AE(ae_title="CONFORMANCE")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, STORED_SYNTAXES)
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, on_store)])
    gateway = Gateway(settings(tmp_path, port, "video-endoscopic"), board.load("host"))
    sender = threading.Thread(target=gateway.sender.run)
    try:
        assert len(gateway.spool.pending()) == len(IODS)
        sender.start()
        deadline = time.monotonic() + 60
        while gateway.spool.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gateway.stop()
        sender.join(30)
        server.shutdown()
    assert gateway.spool.pending() == [], "the gateway did not send its spool"
    assert sorted(stored) == sorted(iod.sop_class_uid for iod in IODS.values())
    return requests


def test_proposed_contexts_on_the_wire_are_the_statements(statement, on_the_wire):
    (request,) = on_the_wire  # one association for the whole queue
    rows = table_after(statement, "Activity: Send Spooled Objects")
    in_statement = sorted((uid_cell(r[1]), (uid_cell(r[3]),)) for r in rows)
    assert sorted(request["contexts"]) == in_statement
    assert all(r[4] == "SCU" and r[5] == "None" for r in rows)


def test_implementation_identity_on_the_wire_is_the_statements(statement, on_the_wire):
    rows = dict((r[0], uid_cell(r[1])) for r in table_after(statement, "Association Policies", "Item"))
    (request,) = on_the_wire
    assert request["implementation_class_uid"] == rows["Implementation Class UID"]
    assert request["implementation_version_name"] == rows["Implementation Version Name"]


def test_shipped_statement_is_fresh(statement):
    with open(DOC, encoding="utf-8") as f:
        shipped = f.read()
    assert shipped == statement, (
        "docs/conformance.md is stale: the code's tables changed. Regenerate it with `%s`" % conformance.REGENERATE)


def test_statement_covers_every_status_range_and_config_key(statement):
    rows = table_after(statement, "Activity: Send Spooled Objects", "Status code")
    for (mask, value, category, meaning), row in zip(dimse.STATUS_RANGES, rows):
        assert row[:3] == [conformance.status_pattern(mask, value), category, meaning]
    assert len(rows) == len(dimse.STATUS_RANGES)
    keys = [uid_cell(r[0]) for r in table_after(statement, "Parameters")]
    assert keys == list(config.SCHEMA)


def test_both_formats_generate_and_html_is_well_formed(tmp_path):
    out = tmp_path / "cs.html"
    result = modgate("conformance", "--format", "html", "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    dom = xml.dom.minidom.parseString(text.replace("<!DOCTYPE html>", "", 1))
    assert dom.documentElement.tagName == "html"
    heads = [h.getAttribute("id") for h in dom.getElementsByTagName("h2") + dom.getElementsByTagName("h3")]
    links = [a.getAttribute("href")[1:] for a in dom.getElementsByTagName("a")]
    assert links and set(links) <= set(heads + [h.getAttribute("id") for n in ("h4", "h5", "h6")
                                                 for h in dom.getElementsByTagName(n)])
    result = modgate("conformance", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == conformance.generate("md")
    assert result.stdout.startswith("# modgate DICOM Conformance Statement")


def test_readme_key_table_is_fresh(tmp_path):
    """The README's table of configuration keys is generated from SCHEMA,
    like the statement: a key added, removed or re-explained without
    regenerating it fails here."""
    readme = os.path.join(ROOT, "README.md")
    copy = tmp_path / "README.md"
    copy.write_text(open(readme, encoding="utf-8").read(), encoding="utf-8")
    assert conformance.update_readme(str(copy)) == 0
    assert copy.read_text(encoding="utf-8") == open(readme, encoding="utf-8").read(), (
        "README.md's configuration key table is stale: run `modgate conformance --readme README.md`")
    for key in config.SCHEMA:
        assert "| `%s` |" % key in copy.read_text(encoding="utf-8")
