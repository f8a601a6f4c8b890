"""A small PACS for `modgate demo` and the tests: pynetdicom on a free
loopback port. It stores each object it receives, as received, into a
folder named by SOP Instance UID; serves a Modality Worklist of one
scheduled procedure (PS3.4 K); takes MPPS N-CREATE/N-SET (PS3.4 F); and
answers storage commitment (PS3.4 J) with a report on a new association
to the requester's listener, as Orthanc does. Host side only (pynetdicom
is not firmware).

    rx = Receiver(folder, box=("MODGATE", "127.0.0.1", port)).start()
    rx.port, rx.ae_title, rx.procedure      the scheduled item (a Dataset)
    rx.files()                        {SOP Instance UID: path}
    rx.mpps                           {MPPS SOP Instance UID: status}
    rx.committed                      SOP Instance UIDs reported committed
    rx.stop()
"""

import os
import threading
import time

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (ModalityPerformedProcedureStep, ModalityWorklistInformationFind,
                                  StorageCommitmentPushModel, Verification)

STORED_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit,
                   "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104"]
# The lowest PSNR of a decoded H.264 frame against the simulated pattern
# that counts as that frame (tests/test_codec.py: 28-33 dB decoded, about
# 24.5 dB for the wrong frame).
MIN_PSNR_DB = 27.0
# PS3.4 J.6: the Storage Commitment Push Model's well-known SOP Instance.
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"


def scheduled_procedure(station_ae_title, modality="ES"):
    """The demo's one worklist item: today's colonoscopy for this station,
    with a name outside ASCII (PS3.5 6.1: ISO_IR 192)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Anna"
    ds.PatientID = "DEMO-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "DEMO-ACC-1"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StudyInstanceUID = generate_uid()
    ds.RequestedProcedureID = "RP-1"
    ds.RequestedProcedureDescription = "Lower GI endoscopy"
    code = Dataset()
    code.CodeValue = "45378"
    code.CodingSchemeDesignator = "C4"
    code.CodeMeaning = "Colonoscopy"
    ds.RequestedProcedureCodeSequence = Sequence([code])
    ds.AdmissionID = "ADM-1"
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station_ae_title
    step.ScheduledProcedureStepStartDate = time.strftime("%Y%m%d", time.gmtime())  # the box asks in UTC
    step.ScheduledProcedureStepStartTime = "090000"
    step.ScheduledPerformingPhysicianName = "Endo^Scopist"
    step.ScheduledProcedureStepDescription = "Colonoscopy"
    step.ScheduledProcedureStepID = "SPS-1"
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


class Receiver:
    """box: (AE title, host, port) of the requester's listener for
    commitment reports; None: the receiver answers no commitment."""

    def __init__(self, folder, ae_title="MODGATE-RX", host="127.0.0.1", port=0, box=None):
        self.folder = folder
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.box = box
        self.received = 0
        self.procedure = scheduled_procedure(box[0] if box else "MODGATE")
        self.mpps = {}  # SOP Instance UID -> Performed Procedure Step Status
        self.mpps_instances = {}  # SOP Instance UID -> instances in its Performed Series Sequence
        self.committed = []
        self._lock = threading.Lock()
        self._server = None
        self._reporters = []
        os.makedirs(folder, exist_ok=True)

    def start(self):
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 65536
        for context in AllStoragePresentationContexts:
            # Every transfer syntax the box may store in, the compressed
            # ones too (pynetdicom stores what it gets, as it came).
            ae.add_supported_context(context.abstract_syntax, STORED_SYNTAXES)
        for sop_class in (Verification, ModalityWorklistInformationFind, ModalityPerformedProcedureStep,
                          StorageCommitmentPushModel):
            ae.add_supported_context(sop_class)
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_N_CREATE, self._on_create), (evt.EVT_N_SET, self._on_set),
            (evt.EVT_N_ACTION, self._on_action)])
        self.port = self._server.server_address[1]
        return self

    def _on_find(self, event):
        """PS3.4 K.4.1.3: the scheduled item when the query's station AE
        title (if given) is its own."""
        query = event.identifier
        step = query.ScheduledProcedureStepSequence[0] if "ScheduledProcedureStepSequence" in query and \
            query.ScheduledProcedureStepSequence else Dataset()
        wanted = str(getattr(step, "ScheduledStationAETitle", "") or "")
        mine = self.procedure.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
        if wanted in ("", "*", mine):
            yield 0xFF00, self.procedure
        yield 0x0000, None

    def _on_create(self, event):
        uid = event.request.AffectedSOPInstanceUID
        with self._lock:
            if uid in self.mpps:
                return 0x0111, None  # Duplicate SOP Instance
            self.mpps[uid] = str(event.attribute_list.PerformedProcedureStepStatus)
        return 0x0000, event.attribute_list

    def _on_set(self, event):
        uid = event.request.RequestedSOPInstanceUID
        changes = event.attribute_list
        with self._lock:
            if uid not in self.mpps:
                return 0x0112, None  # No such SOP Instance
            if "PerformedProcedureStepStatus" in changes:
                self.mpps[uid] = str(changes.PerformedProcedureStepStatus)
            if "PerformedSeriesSequence" in changes:
                self.mpps_instances[uid] = [ref.ReferencedSOPInstanceUID for series in changes.PerformedSeriesSequence
                                            for ref in series.get("ReferencedImageSequence", [])]
        return 0x0000, changes

    def _on_action(self, event):
        """PS3.4 J.3.2: commit to what we hold, then report on a new
        association to the requester (J.3.3), from a thread of its own."""
        if self.box is None:
            return 0x0213, None  # Resource limitation: nowhere to report to
        info = event.action_information
        held = self.files()
        committed, failed = [], []
        for ref in info.ReferencedSOPSequence:
            (committed if ref.ReferencedSOPInstanceUID in held else failed).append(ref)
        reporter = threading.Thread(target=self._report, args=(str(info.TransactionUID), committed, failed))
        reporter.start()
        self._reporters.append(reporter)
        return 0x0000, None

    def _report(self, transaction_uid, committed, failed):
        time.sleep(0.1)  # after our N-ACTION-RSP
        ds = Dataset()
        ds.TransactionUID = transaction_uid
        ds.RetrieveAETitle = self.ae_title
        ds.ReferencedSOPSequence = Sequence([_reference(r) for r in committed])
        if failed:
            ds.FailedSOPSequence = Sequence([_reference(r, 0x0112) for r in failed])
        ae = AE(ae_title=self.ae_title)
        ae.add_requested_context(StorageCommitmentPushModel)
        ae_title, host, port = self.box
        # PS3.4 J.3.3 / PS3.7 D.3.3.4: we open the association to send the
        # report, so we ask for the SCP role.
        role = build_role(StorageCommitmentPushModel, scp_role=True, scu_role=False)
        for _ in range(3):
            assoc = ae.associate(host, port, ae_title=ae_title, ext_neg=[role])
            if assoc.is_established:
                status, _ = assoc.send_n_event_report(ds, 2 if failed else 1, StorageCommitmentPushModel,
                                                      COMMITMENT_INSTANCE)
                assoc.release()
                if status and status.Status == 0x0000:
                    with self._lock:
                        self.committed.extend(r.ReferencedSOPInstanceUID for r in committed)
                    return
            time.sleep(0.5)

    def _on_store(self, event):
        uid = event.request.AffectedSOPInstanceUID
        path = os.path.join(self.folder, uid + ".dcm")
        partial = path + ".part"
        # The data set as it came off the wire, behind File Meta
        # Information that pynetdicom builds from the request.
        with open(partial, "wb") as f:
            f.write(event.encoded_dataset())
        os.replace(partial, path)
        with self._lock:
            self.received += 1
        return 0x0000

    def files(self):
        found = {}
        for name in os.listdir(self.folder):
            if name.endswith(".dcm"):
                found[name[:-4]] = os.path.join(self.folder, name)
        return found

    def stop(self):
        for reporter in self._reporters:
            reporter.join(10)
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def _reference(ref, reason=None):
    item = Dataset()
    item.ReferencedSOPClassUID = ref.ReferencedSOPClassUID
    item.ReferencedSOPInstanceUID = ref.ReferencedSOPInstanceUID
    if reason is not None:
        item.FailureReason = reason
    return item


def check_clip(path, clip, pattern):
    """Problems with a received clip (empty: none): the SOP Instance UID,
    the Instance Number, and every pixel, against the simulated board's
    pattern for frames clip.first_sequence onwards."""
    import pydicom

    problems = []
    ds = pydicom.dcmread(path)
    if ds.SOPInstanceUID != clip.sop_instance_uid:
        problems.append("SOP Instance UID %s, expected %s" % (ds.SOPInstanceUID, clip.sop_instance_uid))
    if int(ds.InstanceNumber) != clip.instance_number:
        problems.append("Instance Number %s, expected %d" % (ds.InstanceNumber, clip.instance_number))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames != clip.frames:
        problems.append("%d frames, expected %d" % (frames, clip.frames))
    expected = b"".join(pattern.frame(k) for k in range(clip.first_sequence, clip.first_sequence + clip.frames))
    got = ds.PixelData
    if got[: len(expected)] != expected or len(got) - len(expected) > 1:
        problems.append("pixel data differs from the pattern")
    return problems


def check_h264_clip(path, clip, pattern):
    """(problems, worst PSNR in dB) of a received H.264 clip (problems
    empty: none): the UID, the frame count in the object and in the
    bitstream, and every frame decoded by FFmpeg within MIN_PSNR_DB of the
    pattern. The PSNR is None when there is no FFmpeg to decode with (then
    only the object is checked)."""
    import math
    import shutil
    import subprocess

    import pydicom
    from pydicom.encaps import generate_fragments

    ds = pydicom.dcmread(path)
    problems = []
    if ds.SOPInstanceUID != clip.sop_instance_uid:
        problems.append("SOP Instance UID %s, expected %s" % (ds.SOPInstanceUID, clip.sop_instance_uid))
    if int(ds.NumberOfFrames) != clip.frames:
        problems.append("%s frames, expected %d" % (ds.NumberOfFrames, clip.frames))
    stream = list(generate_fragments(ds.PixelData))[1]
    if shutil.which("ffmpeg") is None:
        return problems, None
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt",
                              "rgb24", "-"], input=stream, capture_output=True, timeout=120).stdout
    size = pattern.width * pattern.height * 3
    if len(decoded) != clip.frames * size:
        return problems + ["FFmpeg decoded %d frames, expected %d" % (len(decoded) // size, clip.frames)], None
    worst = 99.0
    for k in range(clip.frames):
        got = decoded[k * size:(k + 1) * size:7]
        want = pattern.frame(clip.first_sequence + k)[::7]
        error = sum((a - b) * (a - b) for a, b in zip(got, want)) / len(got)
        worst = min(worst, 99.0 if error == 0 else 10 * math.log10(255 * 255 / error))
    if worst < MIN_PSNR_DB:
        problems.append("a decoded frame is %.1f dB from the pattern (at least %.0f expected)" % (worst, MIN_PSNR_DB))
    return problems, worst
