"""The patient and the study a clip belongs to, and the equipment that made
it, and the one place that turns them into DICOM attributes: for the clips
the recorder stores, the live stream's metadata (PS3.22) and the host's
`modgate capture` and `stream` alike.

A change of patient or exam (config.EXAM_KEYS) or the console's `exam end`
starts a new study; a change of what the series is made with (station, IOD,
frame format) a new series of the same study (PS3.3 C.7.3.1: a series is
one modality's, one equipment's). Instances are numbered from 1 in each
series.
"""

from firmware import __version__
from firmware.config import EXAM_KEYS
from firmware.dicom import tags
from firmware.dicom.encoder import MANUFACTURER
from firmware.dicom.uid import MODALITY_PERFORMED_PROCEDURE_STEP, generate_uid

# The configuration key of each patient and study attribute that comes
# from the technician (PS3.3 C.7.1.1 Patient Module, C.7.2.1 General Study
# Module). All are Type 2: present, and empty when not known.
PATIENT_STUDY_KEYS = (
    ("patient.name", tags.PatientName),
    ("patient.id", tags.PatientID),
    ("patient.birth_date", tags.PatientBirthDate),
    ("patient.sex", tags.PatientSex),
    ("study.accession_number", tags.AccessionNumber),
    ("study.referring_physician", tags.ReferringPhysicianName),
)


# The Request Attributes Sequence's item (PS3.3 Table 10-9), from the
# worklist's values.
REQUEST_KEYS = (
    ("study.scheduled_step_description", tags.ScheduledProcedureStepDescription),
    ("study.scheduled_step_id", tags.ScheduledProcedureStepID),
    ("study.requested_procedure_id", tags.RequestedProcedureID),
)


def exam(cfg):
    """What identifies one exam: its patient and study keys' values."""
    return tuple(cfg[key] for key in EXAM_KEYS)


def patient_attributes(values, study=None):
    """The patient and study attributes that values give (the
    configuration, or a host command's arguments under the same keys; a key
    absent or None is empty). With study, those of the next instance of its
    series too, and the description and station name when configured;
    without, the encoder or the metadata flow make their own UIDs."""
    attributes = {}
    for key, tag in PATIENT_STUDY_KEYS:
        attributes[tag] = values.get(key) or ""
    if study is not None:
        attributes[tags.StudyInstanceUID] = study.study_uid
        attributes[tags.SeriesInstanceUID] = study.series_uid
        attributes[tags.SeriesNumber] = study.series_number
        attributes[tags.InstanceNumber] = study.instances
        # The procedure selected from the worklist (IHE Scheduled Workflow:
        # the modality copies these into every image): the Requested
        # Procedure ID is the Study ID (PS3.17 / IHE RAD TF-2 Table 4.6-6),
        # and the Request Attributes Sequence (PS3.3 C.7.3.1, Type 3) names
        # the requested procedure and the scheduled step the series fulfils.
        if values.get("study.requested_procedure_id"):
            attributes[tags.StudyID] = values["study.requested_procedure_id"]
        request = [(tag, values[key]) for key, tag in REQUEST_KEYS if values.get(key)]
        if request:
            attributes[tags.RequestAttributesSequence] = [request]
        # The procedure's MPPS (PS3.3 C.7.3.1 General Series, Referenced
        # Performed Procedure Step Sequence, Type 3; IHE SWF asks for it).
        if values.get("study.performed_step_uid"):
            attributes[tags.ReferencedPerformedProcedureStepSequence] = [[
                (tags.ReferencedSOPClassUID, MODALITY_PERFORMED_PROCEDURE_STEP),
                (tags.ReferencedSOPInstanceUID, values["study.performed_step_uid"])]]
        # Type 3 (PS3.3 C.7.2.1, C.7.5.1): only when there is a value.
        if values.get("study.description"):
            attributes[tags.StudyDescription] = values["study.description"]
        if values.get("station.name"):
            attributes[tags.StationName] = values["station.name"]
    return attributes


def equipment_attributes(board):
    """The box as the equipment that made an instance: Manufacturer,
    Manufacturer's Model Name (the board), Device Serial Number (the
    board's) and Software Versions (modgate's). Type 3 in the General
    Equipment Module (PS3.3 C.7.5.1) of the stored objects, Type 1 in the
    Enhanced General Equipment Module (C.7.5.2) of the real-time IODs."""
    return {
        tags.Manufacturer: MANUFACTURER,
        tags.ManufacturerModelName: board.model_name,
        tags.DeviceSerialNumber: board.device_serial_number(),
        tags.SoftwareVersions: __version__,
    }


class Study:
    """The study and series the next clip goes into."""

    __slots__ = ("exam", "series_key", "study_uid", "series_uid", "series_number", "instances")

    def __init__(self, exam, series_key, uid_root, study_uid=None):
        self.exam = exam
        # The worklist's Study Instance UID when a procedure was selected:
        # the objects join the study the RIS made (IHE SWF).
        self.study_uid = study_uid or generate_uid(uid_root)
        self.series_number = 0
        self.new_series(series_key, uid_root)

    def new_series(self, series_key, uid_root):
        self.series_key = series_key
        self.series_uid = generate_uid(uid_root)
        self.series_number += 1
        self.instances = 0

    def resume_series(self, series_uid, series_number, instances):
        """Go on with a series begun before (the procedure's, kept across
        a reboot: one series per procedure, IHE SWF)."""
        self.series_uid = series_uid
        self.series_number = series_number
        self.instances = instances
