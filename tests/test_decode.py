"""firmware/dicom/decode.py: what pydicom writes it reads the same, and
garbage is a ValueError, never another exception or unbounded work."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from firmware.dicom import tags
from firmware.dicom.decode import decode_dataset


def written(ds, explicit):
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = not explicit
    write_dataset(buf, ds)
    return buf.getvalue()


@pytest.mark.parametrize("explicit", [True, False])
@pytest.mark.parametrize("charset,name", [(None, "Doe^Jane"), ("ISO_IR 100", "Müller^Jürgen"),
                                          ("ISO_IR 192", "Ørsted^Zoë 李")])
def test_reads_what_pydicom_writes(explicit, charset, name):
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = "12345"
    ds.StudyInstanceUID = "1.2.3.4"
    step = Dataset()
    step.ScheduledProcedureStepID = "SPS1"
    step.ScheduledStationAETitle = "MODGATE"
    code = Dataset()
    code.CodeValue = "45378"
    step.ScheduledProtocolCodeSequence = Sequence([code])
    ds.ScheduledProcedureStepSequence = Sequence([step, Dataset()])
    got = decode_dataset(written(ds, explicit), explicit)
    assert got[tags.PatientName] == name and got[tags.PatientID] == "12345"
    assert got[tags.StudyInstanceUID] == "1.2.3.4"
    steps = got[tags.ScheduledProcedureStepSequence]
    assert len(steps) == 2 and steps[1] == {}
    assert steps[0][tags.ScheduledProcedureStepID] == "SPS1"
    assert steps[0][tags.ScheduledProtocolCodeSequence] == [{tags.CodeValue: "45378"}]


def test_an_unknown_character_set_is_refused_not_guessed():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 144"
    ds.PatientName = "Doe"
    with pytest.raises(ValueError) as err:
        decode_dataset(written(ds, True), True)
    assert "ISO_IR 144" in str(err.value)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), explicit=st.booleans())
def test_garbage_is_a_value_error(data, explicit):
    try:
        decode_dataset(data, explicit)
    except ValueError:
        pass
