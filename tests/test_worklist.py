"""The Modality Worklist C-FIND SCU (firmware/services/worklist.py, `modgate
worklist`) against DCMTK's wlmscpfs serving worklist files the test writes:
Latin-1 and UTF-8 names, items of other stations and dates that must not
match, and more matches than the limit."""

import json
import subprocess
from io import BytesIO

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from firmware.dicom.decode import decode_dataset
from firmware.services.worklist import Query
from tests.conftest import Orthanc, free_port, modgate, stop_process, tool, wait_for_port
from tests.test_scu_tls import pki  # noqa: F401 (a fixture)

CALLED = "WLMSCP"
PLUGINS = "/usr/share/orthanc/plugins"  # Debian's orthanc package
DAY = "20261126"
OTHER_DAY = "20261127"
BUSY_DAY = "20261201"


def worklist_item(path, name, patient_id, accession, station="MODGATE", date=DAY, modality="ES", charset=None,
                  step_id="SPS1", description="Colonoscopy"):
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.AccessionNumber = accession
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.77." + patient_id[1:]
    ds.RequestedProcedureDescription = "Lower GI endoscopy"
    code = Dataset()
    code.CodeValue = "45378"
    code.CodingSchemeDesignator = "C4"
    code.CodeMeaning = "Colonoscopy"
    ds.RequestedProcedureCodeSequence = Sequence([code])
    ds.AdmissionID = "ADM-" + patient_id
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = "093000"
    step.ScheduledPerformingPhysicianName = "Endo^Scopist"
    step.ScheduledProcedureStepDescription = description
    step.ScheduledProcedureStepID = step_id
    ds.ScheduledProcedureStepSequence = Sequence([step])
    ds.RequestedProcedureID = "RP-" + patient_id
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.78." + patient_id[1:]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(str(path), enforce_file_format=True)


class Wlmscpfs:
    """DCMTK's wlmscpfs on a loopback port serving the worklist files put in
    .folder (DB/<called AE title>/ with its lockfile), stopped at the end.
    -csk by default: each item's own Specific Character Set in its
    response, as a worklist with several character sets is served (without
    it wlmscpfs leaves it out; test_names_without_a_specific_character_set
    covers that)."""

    def __init__(self, db, called, options=("-csk",)):
        self.db = db
        self.folder = db / called
        self.folder.mkdir(parents=True)
        (self.folder / "lockfile").write_bytes(b"")
        self.options = options
        self.proc = None

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen([tool("wlmscpfs"), *self.options, "-dfp", str(self.db), str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self.port

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)


@pytest.fixture(scope="module")
def wlmscpfs(tmp_path_factory):
    scp = Wlmscpfs(tmp_path_factory.mktemp("worklist"), CALLED)
    folder = scp.folder
    worklist_item(folder / "latin1.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100")
    worklist_item(folder / "utf8.wl", "Ørsted^Zoë 李", "P200", "A200", charset="ISO_IR 192", step_id="SPS2",
                  description="Gastroscopy")
    worklist_item(folder / "other-station.wl", "Other^Station", "P300", "A300", station="OTHERAE")
    worklist_item(folder / "other-date.wl", "Other^Date", "P400", "A400", date=OTHER_DAY)
    worklist_item(folder / "other-modality.wl", "Other^Modality", "P500", "A500", modality="US")
    for n in range(5):
        worklist_item(folder / ("busy%d.wl" % n), "Busy^Patient%d" % n, "P9%02d" % n, "A9%02d" % n, date=BUSY_DAY)
    try:
        yield scp.start()
    finally:
        scp.stop()


def worklist(port, *options):
    result = modgate("worklist", "--aec", CALLED, "--json", *options, "127.0.0.1", str(port), timeout=60)
    items = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, items


def test_json_returns_exactly_the_matching_items_with_every_key(wlmscpfs):
    result, items = worklist(wlmscpfs, "--date", DAY, "--modality", "ES")
    assert result.returncode == 0, result.stdout + result.stderr
    by_id = dict((item["PatientID"], item) for item in items)
    assert sorted(by_id) == ["P100", "P200"], items  # not another station's, date's or modality's
    latin1, utf8 = by_id["P100"], by_id["P200"]
    assert latin1["PatientName"] == "Müller^Jürgen" and latin1["SpecificCharacterSet"] == "ISO_IR 100"
    assert utf8["PatientName"] == "Ørsted^Zoë 李" and utf8["SpecificCharacterSet"] == "ISO_IR 192"
    assert latin1 == dict(latin1, AccessionNumber="A100", PatientBirthDate="19700101", PatientSex="F",
                          StudyInstanceUID="1.2.826.0.1.3680043.10.77.100", RequestedProcedureID="RP-P100",
                          RequestedProcedureDescription="Lower GI endoscopy", ReferringPhysicianName="Ref^Doctor",
                          AdmissionID="ADM-P100", Modality="ES", ScheduledStationAETitle="MODGATE",
                          ScheduledProcedureStepStartDate=DAY, ScheduledProcedureStepStartTime="093000",
                          ScheduledPerformingPhysicianName="Endo^Scopist", ScheduledProcedureStepID="SPS1",
                          ScheduledProcedureStepDescription="Colonoscopy")
    assert latin1["RequestedProcedureCodeSequence"] == [
        {"CodeValue": "45378", "CodingSchemeDesignator": "C4", "CodeMeaning": "Colonoscopy"}]
    assert utf8["ScheduledProcedureStepID"] == "SPS2"


def test_the_filters_narrow_the_match(wlmscpfs):
    _, items = worklist(wlmscpfs, "--date", DAY, "--patient-id", "P200")
    assert [i["PatientID"] for i in items] == ["P200"]
    _, items = worklist(wlmscpfs, "--date", DAY, "--accession", "A100")
    assert [i["PatientID"] for i in items] == ["P100"]
    _, items = worklist(wlmscpfs, "--date", DAY, "--station-aet", "OTHERAE")
    assert [i["PatientID"] for i in items] == ["P300"]
    _, items = worklist(wlmscpfs, "--date", "%s-%s" % (DAY, OTHER_DAY), "--modality", "ES")
    assert sorted(i["PatientID"] for i in items) == ["P100", "P200", "P400"]
    _, items = worklist(wlmscpfs, "--date", DAY, "--modality", "US")
    assert [i["PatientID"] for i in items] == ["P500"]


def test_more_matches_than_the_limit_are_cancelled(wlmscpfs):
    result, items = worklist(wlmscpfs, "--date", BUSY_DAY, "--max-matches", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(items) == 2 and all(i["PatientName"].startswith("Busy^") for i in items)
    assert "more than 2 matches" in result.stderr
    result, items = worklist(wlmscpfs, "--date", BUSY_DAY)
    assert len(items) == 5


def test_one_line_per_item_without_json(wlmscpfs):
    result = modgate("worklist", "--aec", CALLED, "--date", DAY, "--modality", "ES", "127.0.0.1", str(wlmscpfs))
    assert result.returncode == 0
    lines = sorted(result.stdout.splitlines())
    assert lines == [DAY + "  093000  Müller^Jürgen  P100  A100  Colonoscopy",
                     DAY + "  093000  Ørsted^Zoë 李  P200  A200  Gastroscopy"], lines


def test_a_bad_date_is_refused_and_no_peer_is_a_failure():
    result = modgate("worklist", "--date", "2026-11-26", "127.0.0.1", "104")
    assert result.returncode == 2 and "--date" in result.stderr
    port = free_port()
    result = modgate("worklist", "--connect-timeout", "2", "127.0.0.1", str(port))
    assert result.returncode == 1 and "failed" in result.stdout


@pytest.mark.parametrize("explicit", [True, False])
def test_the_identifier_reads_back(explicit):
    """The query's identifier is a data set pydicom and our own decoder read
    alike, with the date range written as it is (PS3.4 C.2.2.2.5)."""
    raw = Query("MODGATE", "ES", "%s-%s" % (DAY, OTHER_DAY), "P1", "A1").identifier(explicit)
    ours = decode_dataset(raw, explicit)
    theirs = read_dataset(BytesIO(raw), is_implicit_VR=not explicit, is_little_endian=True)
    step = theirs.ScheduledProcedureStepSequence[0]
    assert step.ScheduledProcedureStepStartDate == "%s-%s" % (DAY, OTHER_DAY)
    assert step.ScheduledStationAETitle == "MODGATE" and theirs.PatientID == "P1" and theirs.AccessionNumber == "A1"
    assert ours[0x00400100][0][0x00400002] == step.ScheduledProcedureStepStartDate


def test_names_without_a_specific_character_set(tmp_path):
    """wlmscpfs's default (-cs0) answers without Specific Character Set: the
    Latin-1 and UTF-8 bytes still come out as the names they are
    (firmware/dicom/decode.py: valid UTF-8 is UTF-8, else Latin-1), never
    with a replacement character."""
    scp = Wlmscpfs(tmp_path, CALLED, options=())
    worklist_item(scp.folder / "latin1.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100")
    worklist_item(scp.folder / "utf8.wl", "Ørsted^Zoë 李", "P200", "A200", charset="ISO_IR 192")
    try:
        result, items = worklist(scp.start(), "--date", DAY)
    finally:
        scp.stop()
    assert result.returncode == 0, result.stdout
    names = dict((i["PatientID"], i["PatientName"]) for i in items)
    assert names == {"P100": "Müller^Jürgen", "P200": "Ørsted^Zoë 李"}
    assert all("SpecificCharacterSet" not in i for i in items)


def test_a_clip_of_a_selected_procedure_carries_it(wlmscpfs, tmp_path):
    """The box: `worklist refresh` on the console lists this station's
    procedures of today, `worklist select N` makes one the procedure, and
    the next clip carries its patient, Study Instance UID, Accession Number,
    Study ID and Request Attributes Sequence, and passes dciodvfy; `exam
    end` ends it."""
    import time

    import pydicom

    from tests.conftest import Storescp, dciodvfy
    from tests.test_console import RunningGateway
    from tests.test_faults import wait_for
    from tests.test_gateway import H, W

    scp = Storescp(tmp_path / "rx", "+xa")
    today = time.strftime("%Y%m%d", time.gmtime())
    wl = Wlmscpfs(tmp_path / "db", "TODAY")
    worklist_item(wl.folder / "a.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100", date=today)
    worklist_item(wl.folder / "b.wl", "Ørsted^Zoë 李", "P200", "A200", charset="ISO_IR 192", date=today,
                  step_id="SPS2", description="Gastroscopy")
    worklist_item(wl.folder / "c.wl", "Other^Station", "P300", "A300", station="OTHERAE", date=today)
    port = wl.start()
    cfg = {
        "acquisition": {"width": W, "height": H, "pixel": "rgb8", "paced": True},
        "clip": {"mode": "command"},
        "pacs": {"port": scp.port, "ae_title": "STORESCP", "idle_release": 0.2},
        "worklist": {"host": "127.0.0.1", "port": port, "ae_title": "TODAY"},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }
    gw = RunningGateway(tmp_path, cfg)
    try:
        listed = gw.client("worklist refresh")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "2 items" in listed.stdout and "Müller^Jürgen" in listed.stdout and "Ørsted^Zoë 李" in listed.stdout
        assert "Other^Station" not in listed.stdout
        number = [l.split()[0] for l in listed.stdout.splitlines() if "P200" in l][0]
        chosen = gw.client("worklist", "worklist select %s" % number, "record start")
        assert chosen.returncode == 0, chosen.stdout + chosen.stderr
        assert "procedure: Ørsted^Zoë 李, ID P200, accession A200" in chosen.stdout
        time.sleep(0.4)
        assert gw.client("record stop").returncode == 0
        assert wait_for(lambda: len(scp.files()) == 1), gw.client("status", "log 30").stdout
        refused = gw.client("worklist select 9")
        assert refused.returncode == 1 and "no item 9" in refused.stderr
        assert gw.client("exam end").returncode == 0
    finally:
        assert gw.stop() == 0
        scp.stop()
        wl.stop()
    path = scp.files()[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert str(ds.PatientName) == "Ørsted^Zoë 李" and ds.PatientID == "P200" and ds.AccessionNumber == "A200"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.77.200" and ds.StudyID == "RP-P200"
    assert ds.PatientBirthDate == "19700101" and ds.PatientSex == "F"
    request = ds.RequestAttributesSequence[0]
    assert (request.RequestedProcedureID, request.ScheduledProcedureStepID,
            request.ScheduledProcedureStepDescription) == ("RP-P200", "SPS2", "Gastroscopy")
    errors, _ = dciodvfy(path)
    assert errors == [], errors


def test_the_box_keeps_the_last_good_list_and_refreshes_it_by_itself(tmp_path):
    """firmware/schedule.py: with worklist.refresh the gateway asks on its
    own; the list is kept in the spool folder, so a restart shows it again,
    and an SCP that went away keeps it and raises the `worklist` alarm."""
    import time

    import board
    from firmware.gateway import Gateway
    from firmware.spool import WORKLIST
    from tests.test_faults import running, wait_for
    from tests.test_gateway import settings

    today = time.strftime("%Y%m%d", time.gmtime())
    wl = Wlmscpfs(tmp_path / "db", "TODAY")
    worklist_item(wl.folder / "a.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100", date=today)
    cfg = settings(tmp_path, free_port(), **{"clip.count": 0, "clip.mode": "command", "worklist.host": "127.0.0.1",
                                             "worklist.port": wl.start(), "worklist.ae_title": "TODAY",
                                             "worklist.refresh": 1})
    try:
        gateway = Gateway(cfg, board.load("host"))
        with running(gateway):
            assert wait_for(lambda: gateway.schedule.items, timeout=20)
        assert [i["PatientName"] for i in gateway.schedule.items] == ["Müller^Jürgen"]
        assert (tmp_path / "spool" / WORKLIST).exists() and gateway.spool.unknown() == []
    finally:
        wl.stop()
    again = Gateway(cfg, board.load("host"))
    again.schedule.load()
    assert [i["PatientID"] for i in again.schedule.items] == ["P100"]
    assert "Müller^Jürgen" in "\n".join(again.schedule.lines())
    problem = again.schedule.refresh()
    assert problem and "cannot be asked" in problem
    assert [i["PatientID"] for i in again.schedule.items] == ["P100"]
    (key, _, text, hint), = again.alarms.active()
    assert key == "worklist" and "cannot be asked" in text and "check worklist.host, worklist.port" in hint


def test_orthanc_worklist_plugin_as_a_second_scp(tmp_path):
    """Orthanc's ModalityWorklists plugin (Debian's package) serving the
    same kind of files: the same matches, names decoded, filters honoured."""
    folder = tmp_path / "wl"
    folder.mkdir()
    worklist_item(folder / "latin1.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100")
    worklist_item(folder / "utf8.wl", "Ørsted^Zoë 李", "P200", "A200", charset="ISO_IR 192", step_id="SPS2")
    worklist_item(folder / "other-station.wl", "Other^Station", "P300", "A300", station="OTHERAE")
    worklist_item(folder / "other-date.wl", "Other^Date", "P400", "A400", date=OTHER_DAY)
    server = Orthanc(tmp_path, Plugins=[PLUGINS + "/libModalityWorklists.so"],
                     Worklists={"Enable": True, "Database": str(folder)},
                     DicomModalities={"box": ["MODGATE", "127.0.0.1", 104]},  # Orthanc answers only known AEs
                     DefaultEncoding="Utf8")  # else it answers in Latin-1, where 李 has no place
    try:
        args = ("worklist", "--aec", "ORTHANC", "--json", "--date", DAY, "--modality", "ES")
        result = modgate(*args, "127.0.0.1", str(server.dicom_port), timeout=60)
        filtered = modgate(*args, "--patient-id", "P200", "127.0.0.1", str(server.dicom_port), timeout=60)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    by_id = dict((item["PatientID"], item) for item in items)
    assert sorted(by_id) == ["P100", "P200"], items
    assert by_id["P100"]["PatientName"] == "Müller^Jürgen"
    assert by_id["P200"]["PatientName"] == "Ørsted^Zoë 李"
    assert by_id["P100"]["StudyInstanceUID"] == "1.2.826.0.1.3680043.10.77.100"
    assert by_id["P100"]["AccessionNumber"] == "A100" and by_id["P200"]["ScheduledProcedureStepID"] == "SPS2"
    assert [json.loads(line)["PatientID"] for line in filtered.stdout.splitlines()] == ["P200"]


def test_the_box_asks_a_tls_worklist_scp(tmp_path, pki):
    """worklist.tls: the box's worklist query over DICOM TLS (PS3.15 B.9)
    to Orthanc's worklist plugin, which requires our client certificate;
    the box's identity and trusted CAs are pacs.ca/cert/key. Without TLS
    the same SCP is not reached."""
    import time

    import board
    from firmware.gateway import Gateway
    from tests.test_gateway import settings

    folder = tmp_path / "wl"
    folder.mkdir()
    today = time.strftime("%Y%m%d", time.gmtime())
    worklist_item(folder / "a.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100", date=today)
    server = Orthanc(tmp_path, Plugins=[PLUGINS + "/libModalityWorklists.so"],
                     Worklists={"Enable": True, "Database": str(folder)},
                     DicomModalities={"box": ["MODGATE", "127.0.0.1", 104]}, DefaultEncoding="Utf8",
                     DicomTlsEnabled=True, DicomTlsCertificate=pki["server.crt"],
                     DicomTlsPrivateKey=pki["server.key"], DicomTlsTrustedCertificates=pki["ca.crt"],
                     DicomTlsRemoteCertificateRequired=True)
    try:
        cfg = settings(tmp_path, free_port(), **{
            "clip.count": 0, "clip.mode": "command", "worklist.host": "127.0.0.1",
            "worklist.port": server.dicom_port, "worklist.ae_title": "ORTHANC", "worklist.refresh": 0,
            "worklist.tls": True, "pacs.ca": pki["ca.crt"], "pacs.cert": pki["client.crt"],
            "pacs.key": pki["client.key"], "pacs.connect_timeout": 5.0})
        gateway = Gateway(cfg, board.load("host"))
        assert gateway.schedule.refresh() is None, gateway.log.recent[-5:]
        assert [i["PatientName"] for i in gateway.schedule.items] == ["Müller^Jürgen"]
        plain = Gateway(dict(cfg, **{"worklist.tls": False}), board.load("host"))
        problem = plain.schedule.refresh()
    finally:
        server.stop()
    assert problem and "cannot be asked" in problem
