"""The DICOM metadata flow of PS3.22, sans-I/O: for each video frame, one
payload of DICOM attributes, cut into RTP packets that carry the video
frame's RTP timestamp.

A payload (Explicit VR Little Endian, PS3.22) is:

    RTV Meta Information     128-byte preamble, 'DICM', group 0002 (PS3.10
                             7.3): the video flow's transfer syntax, the
                             real-time SOP class and instance, the source
                             and flow UUIDs, the RTP sampling rate
    dynamic part             Current Frame Functional Groups Sequence
                             (0006,0001), PS3.3 C.7.6.27: the Frame Content
                             and Time of Frame macros of this frame, with
                             Frame Origin Timestamp (0034,0007) in PTP TAI
    static part              the rest of the IOD (PS3.3 A.32.9 Real-Time
                             Video Endoscopic Image, A.32.10 Real-Time Video
                             Photographic Image: see STATIC_MODULES), among
                             it the Real-Time Bulk Data Flow Sequence
                             (0034,000A) naming the video flow: on the first
                             frame and then at least once a second

The group numbers put the three parts in that order (PS3.3 C.7.6.27 note).
"""

from firmware import __version__
from firmware.dicom import tags, uid
from firmware.dicom.element import dataset_charset, encode_dataset
from firmware.dicom.encoder import DEFAULT_ANATOMIC_REGION, IMAGE_TYPE, MANUFACTURER
from firmware.dicom.icc import srgb_profile
from firmware.dicom.part10 import meta_information
from firmware.dicom.uid import generate_uid
from firmware.rtv import nmos
from firmware.rtv.rtp import CLOCK_RATE, HEADER_SIZE, one_byte_extension, rtp_header
from firmware.rtv.st2110_20 import MAX_DATAGRAM

# PS3.22: the dynamic RTP payload type recommended for the metadata flow,
# and its SDP encoding name (a=rtpmap:104 dicom/90000).
PAYLOAD_TYPE = 104
ENCODING_NAME = "dicom"

# PS3.22 / PS3.4: the real-time communication SOP class of each IOD
# modgate streams.
RTV_SOP_CLASSES = {
    "video-endoscopic": uid.VIDEO_ENDOSCOPIC_IMAGE_RTC,
    "video-photographic": uid.VIDEO_PHOTOGRAPHIC_IMAGE_RTC,
}
MODALITY = {"video-endoscopic": "ES", "video-photographic": "XC"}

# PS3.22 permits BT.601 colour only: 4:2:2 is YBR_FULL_422, RGB is RGB.
# pixel format -> (Photometric Interpretation, Bits Allocated, Bits Stored).
PIXEL_DESCRIPTION = {
    "ycbcr422": ("YBR_FULL_422", 8, 8),
    "ycbcr422-10": ("YBR_FULL_422", 16, 10),
    "rgb8": ("RGB", 8, 8),
}

RTV_META_INFORMATION_VERSION = b"\x00\x01"  # PS3.10 7.3

# PS3.3 Table A.32.9-1 (Real-Time Video Endoscopic Image IOD) and Table
# A.32.10-1 (Real-Time Video Photographic Image IOD), the same modules in
# both: (module, PS3.3 section, usage, what the flow carries). The Current
# Frame Functional Groups are the dynamic part; the rest is the static part
# (MetadataFlow.set_attributes writes it). For the Conformance Statement.
STATIC_MODULES = (
    ("Patient", "C.7.1.1", "M", "Patient's Name, ID, Birth Date, Sex (from the configuration; empty when not known)"),
    ("General Study", "C.7.2.1", "M", "Study Instance UID, Date, Time, ID, Accession Number, Referring Physician"),
    ("General Series", "C.7.3.1", "M", "Modality (ES or XC), Series Instance UID, Series Number"),
    ("General Equipment", "C.7.5.1", "M", "Manufacturer, and the attributes below"),
    ("Enhanced General Equipment", "C.7.5.2", "M",
     "Manufacturer, Manufacturer's Model Name (the board), Device Serial Number (the board's), Software Versions"),
    ("Frame of Reference", "C.7.4.1", "C", "not written: the frames are not spatially related to other instances and "
                                           "no Camera Position macro is sent"),
    ("Synchronization", "C.7.4.2", "M",
     "Synchronization Trigger NO TRIGGER; with a PTP-traceable clock the UTC Synchronization Frame of Reference "
     "UID, Acquisition Time Synchronized Y and Time Distribution Protocol PTP, else a UID of the flow's own and N"),
    ("General Acquisition", "C.7.10.1", "M", "Acquisition UID (one per flow)"),
    ("General Image", "C.7.6.1", "M", "Instance Number 1, Patient Orientation empty"),
    ("Real-Time Bulk Data Flow", "C.7.6.26", "M", "the video flow's Source, Flow, Transfer Syntax and RTP rate"),
    ("Acquisition Context", "C.7.6.14", "M", "Acquisition Context Sequence, empty"),
    ("VL Image", "C.8.12.1", "M", "Image Type ORIGINAL\\PRIMARY, the samples' description, Lossy Image Compression "
                                  "00, Anatomic Region Sequence (whole body unless configured)"),
    ("ICC Profile", "C.11.15", "M (endoscopic), U (photographic)",
     "an sRGB input profile (ICC.1:2010 v4.3, firmware/dicom/icc.py) and Color Space SRGB"),
    ("SOP Common", "C.12.1", "M", "SOP Class UID (the real-time one), SOP Instance UID, Specific Character Set "
                                  "when needed"),
    ("Common Instance Reference", "C.12.2", "M", "no attribute: the flow references no other instance"),
    ("Real-Time Acquisition", "C.7.6.28", "M", "Shared Functional Groups Sequence of one empty item, "
                                               "Stereo Pairs Present NO"),
)

# The attributes the caller must give for the static part: Type 1 in the
# Enhanced General Equipment Module (PS3.3 C.7.5.2) and known only to the
# box (firmware/study.py equipment_attributes).
REQUIRED_ATTRIBUTES = (tags.ManufacturerModelName, tags.DeviceSerialNumber)

# PS3.22 does not say how a payload larger than one packet is split; this
# is modgate's rule (also in the Conformance Statement, from this text).
PACKETIZATION_RULE = (
    "Each video frame has exactly one metadata payload, carried by one or more "
    "consecutive RTP packets (consecutive sequence numbers, nothing of another frame "
    "between them) that all carry the RTP timestamp of that video frame. Every packet "
    "but the last is filled to the datagram size limit (1460 bytes of UDP payload, RTP "
    "header included); the last packet of the frame has the marker bit set. Every packet "
    "has X=1 and an RFC 8285 one-byte header extension: the first and the last carry the "
    "NMOS identity and timing elements, with the grain flags S on the first, E on the last "
    "(S and E on a payload of one packet); a packet in between carries the grain flags "
    "alone, neither set. The element IDs are those of the SDP's a=extmap lines. A receiver "
    "starts a payload at a packet whose grain flags have S, appends the payloads of the "
    "following packets of the same RTP timestamp in sequence-number order, and ends it at "
    "the packet with E (and the marker bit); a missing sequence number discards that "
    "frame's payload."
)


_ICC = []


def _icc_profile():
    """firmware/dicom/icc.py's profile, built once for all flows."""
    if not _ICC:
        _ICC.append(srgb_profile())
    return _ICC[0]


def uuid_bytes():
    """A new random UUID (RFC 9562 version 4) as 16 bytes."""
    return uid.uuid4_int().to_bytes(16, "big")


def _civil(days):
    """(year, month, day) of a day counted from 1970-01-01, proleptic
    Gregorian (the 400-year era arithmetic, valid for any day)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def format_dt(unix_ns):
    """A DT value (PS3.5 6.2) in UTC, to the microsecond, with its offset."""
    seconds, ns = divmod(unix_ns, 1000000000)
    days, rest = divmod(seconds, 86400)
    year, month, day = _civil(days)
    return "%04d%02d%02d%02d%02d%02d.%06d+0000" % (
        year, month, day, rest // 3600, rest // 60 % 60, rest % 60, ns // 1000)


class MetadataFlow:
    """The metadata flow of one video flow.

    iod: a key of RTV_SOP_CLASSES; width, height, pixel (a key of
    PIXEL_DESCRIPTION) and rate describe the video flow. source_id,
    video_flow_id and flow_id are 16-byte UUIDs (the video's source, the
    video flow it describes, this flow); meta_source_id is this flow's own
    source (RTV Source Identifier and the NMOS source id of its packets),
    a new one when not given. attributes: {tag: value} for the static part:
    the patient, study and series, and the equipment's model and serial
    number (REQUIRED_ATTRIBUTES); UIDs not given are generated.
    acquisition_time_synchronized: the frames' times come from a clock
    synchronized to UTC (a PTP-traceable one), for the Synchronization
    Module.
    """

    def __init__(self, iod, width, height, pixel, rate, source_id, video_flow_id, flow_id,
                 attributes=None, payload_type=PAYLOAD_TYPE, ssrc=0, max_datagram=MAX_DATAGRAM,
                 sequence=0, uid_root=None, meta_source_id=None, acquisition_time_synchronized=False):
        if iod not in RTV_SOP_CLASSES:
            raise ValueError("no real-time SOP class for %r; one of %s"
                             % (iod, ", ".join(sorted(RTV_SOP_CLASSES))))
        if pixel not in PIXEL_DESCRIPTION:
            raise ValueError("pixel format %r cannot be streamed; one of %s"
                             % (pixel, ", ".join(sorted(PIXEL_DESCRIPTION))))
        if not 0 <= payload_type <= 127:
            raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
        self.iod = iod
        self.sop_class_uid = RTV_SOP_CLASSES[iod]
        self.width, self.height, self.pixel, self.rate = width, height, pixel, rate
        self.source_id, self.video_flow_id, self.flow_id = source_id, video_flow_id, flow_id
        # PS3.22 7.1 (RTV Source Identifier) and the NMOS in-stream identity:
        # the metadata flow is a source of its own; the video's source is
        # named in the Real-Time Bulk Data Flow Sequence (0034,0005).
        self.meta_source_id = meta_source_id or uuid_bytes()
        self.payload_type = payload_type
        self.ssrc = ssrc & 0xFFFFFFFF
        self.max_datagram = max_datagram
        self.sequence = sequence & 0xFFFFFFFF
        self.uid_root = uid_root
        # At least once a second (PS3.22): every whole-second number of frames.
        self.static_period = max(1, rate[0] // rate[1])
        attributes = dict(attributes or {})
        self.sop_instance_uid = attributes.get(tags.SOPInstanceUID) or generate_uid(uid_root)
        # PS3.3 C.7.4.2.1.1: equipment synchronized to UTC may name the
        # well-known UTC Synchronization Frame of Reference; a free-running
        # clock is an environment of its own, which only this flow's frames
        # share.
        self.acquisition_time_synchronized = bool(acquisition_time_synchronized)
        if self.acquisition_time_synchronized:
            self.synchronization_uid = uid.UTC_SYNCHRONIZATION_FRAME_OF_REFERENCE
        else:
            self.synchronization_uid = (attributes.get(tags.SynchronizationFrameOfReferenceUID)
                                        or generate_uid(uid_root))
        # PS3.3 C.7.10.1: the flow is one acquisition.
        self.acquisition_uid = attributes.get(tags.AcquisitionUID) or generate_uid(uid_root)
        # PS3.22 Table 7.1-1, RTV Meta Information: only the elements it
        # lists (no Implementation Class UID / Version Name, no Source
        # Application Entity Title: those are Part 10 File Meta elements).
        meta = [
            (tags.TransferSyntaxUID, uid.SMPTE_ST2110_20_PROGRESSIVE),
            (tags.RTVMetaInformationVersion, RTV_META_INFORMATION_VERSION),
            (tags.RTVCommunicationSOPClassUID, self.sop_class_uid),
            (tags.RTVCommunicationSOPInstanceUID, self.sop_instance_uid),
            (tags.RTVSourceIdentifier, bytes(self.meta_source_id)),
            (tags.RTVFlowIdentifier, bytes(flow_id)),
            (tags.RTVFlowRTPSamplingRate, CLOCK_RATE),
        ]
        self._meta = meta_information(meta)
        self.study_instance_uid = self.series_instance_uid = None
        self.set_attributes(attributes)

    def set_attributes(self, attributes):
        """(Re)build the static part, e.g. when the console changes the
        patient. The SOP instance stays the same for the flow's life.
        ValueError when attributes lack a REQUIRED_ATTRIBUTES value."""
        photometric, allocated, stored = PIXEL_DESCRIPTION[self.pixel]
        values = {
            # PS3.3 C.7.1.1 Patient, C.7.2.1 General Study: Type 2, present
            # and empty when not known.
            tags.PatientName: "",
            tags.PatientID: "",
            tags.PatientBirthDate: "",
            tags.PatientSex: "",
            tags.StudyDate: "",
            tags.StudyTime: "",
            tags.ReferringPhysicianName: "",
            tags.StudyID: "",
            tags.AccessionNumber: "",
            # PS3.3 C.7.3.1 General Series.
            tags.Modality: MODALITY[self.iod],
            tags.SeriesNumber: 1,
            # PS3.3 C.7.5.1 General Equipment (Manufacturer, Type 2) and
            # C.7.5.2 Enhanced General Equipment (all four Type 1): the
            # firmware's own two here, the box's model and serial number
            # from the caller (REQUIRED_ATTRIBUTES).
            tags.Manufacturer: MANUFACTURER,
            tags.SoftwareVersions: __version__,
            # PS3.3 C.7.4.2 Synchronization. The frames are timed by a
            # clock, not triggered by other equipment: NO TRIGGER. Time
            # Distribution Protocol (Type 3) only when there is one.
            tags.SynchronizationFrameOfReferenceUID: self.synchronization_uid,
            tags.SynchronizationTrigger: "NO TRIGGER",
            tags.AcquisitionTimeSynchronized: "Y" if self.acquisition_time_synchronized else "N",
            # PS3.3 C.7.10.1 General Acquisition: all Type 3.
            tags.AcquisitionUID: self.acquisition_uid,
            # PS3.3 C.7.6.1 General Image: Instance Number Type 2; Patient
            # Orientation Type 2C, required (no Image Orientation (Patient)
            # in these IODs) and unknown: empty.
            tags.InstanceNumber: 1,
            tags.PatientOrientation: "",
            # PS3.3 C.7.6.14 Acquisition Context: Type 2, empty when
            # nothing is known of the conditions.
            tags.AcquisitionContextSequence: [],
            # PS3.3 C.8.12.1 VL Image: Image Type (Type 1, C.8.12.1.1.6),
            # the samples' description, Lossy Image Compression (Type 2:
            # ST 2110-20 video is uncompressed), and the Anatomic Region
            # Sequence the stored video objects carry (1C for video IODs).
            tags.ImageType: IMAGE_TYPE,
            tags.SamplesPerPixel: 3,
            tags.PhotometricInterpretation: photometric,
            tags.PlanarConfiguration: 0,
            tags.BitsAllocated: allocated,
            tags.BitsStored: stored,
            tags.HighBit: stored - 1,
            tags.PixelRepresentation: 0,
            tags.LossyImageCompression: "00",
            tags.AnatomicRegionSequence: [DEFAULT_ANATOMIC_REGION],
            # The frame size (PS3.3 C.7.6.3 Rows, Columns): not a module of
            # these IODs, kept for receivers that size frames from the
            # metadata (the SDP's width and height say the same).
            tags.Rows: self.height,
            tags.Columns: self.width,
            # PS3.3 C.11.15 ICC Profile (M for endoscopic, U for
            # photographic; both carry it): an sRGB input profile, and Color
            # Space (Type 3, C.11.15.1.2) naming it.
            tags.ICCProfile: _icc_profile(),
            tags.ColorSpace: "SRGB",
            # PS3.3 C.12.2 Common Instance Reference: its two sequences are
            # 1C, required only when this instance references others, and
            # this one references none: the module is present, empty.
            # PS3.3 C.7.6.28 Real-Time Acquisition: the one item of shared
            # functional groups may be empty when no group's condition holds,
            # and neither IOD's functional group table (A.32.9, A.32.10)
            # lists any but Current Frame ones; no stereo pairs.
            tags.SharedFunctionalGroupsSequence: [[]],
            tags.StereoPairsPresent: "NO",
        }
        if self.acquisition_time_synchronized:
            # PS3.3 C.7.4.2: Type 3, how the clock is synchronized (IEEE
            # 1588; the box's PTP hardware clock, board data clock.phc).
            values[tags.TimeDistributionProtocol] = "PTP"
        values.update(attributes)
        missing = [tags.tag_str(t) for t in REQUIRED_ATTRIBUTES + (tags.Manufacturer, tags.SoftwareVersions)
                   if not values.get(t)]
        if missing:
            raise ValueError("the static part needs %s (PS3.3 C.7.5.2, Type 1)" % ", ".join(missing))
        # PS3.3 C.12.1 SOP Common: the real-time SOP class and this flow's
        # instance, whatever the caller gave.
        values[tags.SOPClassUID] = self.sop_class_uid
        values[tags.SOPInstanceUID] = self.sop_instance_uid
        # Study and series stay those of the flow's start unless given.
        self.study_instance_uid = (values.get(tags.StudyInstanceUID) or self.study_instance_uid
                                   or generate_uid(self.uid_root))
        self.series_instance_uid = (values.get(tags.SeriesInstanceUID) or self.series_instance_uid
                                    or generate_uid(self.uid_root))
        values[tags.StudyInstanceUID] = self.study_instance_uid
        values[tags.SeriesInstanceUID] = self.series_instance_uid
        # PS3.3 C.7.6.26: the video flow this metadata describes.
        values[tags.RealTimeBulkDataFlowSequence] = [[
            (tags.SourceIdentifier, bytes(self.source_id)),
            (tags.FlowIdentifierSequence, [[
                (tags.FlowIdentifier, bytes(self.video_flow_id)),
                (tags.FlowTransferSyntaxUID, uid.SMPTE_ST2110_20_PROGRESSIVE),
                (tags.FlowRTPSamplingRate, CLOCK_RATE),
            ]]),
        ]]
        dataset = list(values.items())
        self._charset = dataset_charset(dataset)
        if self._charset:
            dataset.append((tags.SpecificCharacterSet, self._charset))
        self._static = encode_dataset(dataset, explicit=True, charset=self._charset, undefined_length=False)

    def payload(self, k, origin_tai_ns, static=None):
        """The payload of frame k, captured at origin_tai_ns (PTP TAI ns).
        static: force the static part in (True) or out (False); by default
        on frame 0 and every static_period frames."""
        if static is None:
            static = k % self.static_period == 0
        utc_ns = origin_tai_ns - nmos.TAI_UTC_OFFSET * 1000000000
        item = [
            # PS3.3 C.7.6.16.2.2 Frame Content: the frame's number and time.
            (tags.FrameContentSequence, [[
                (tags.FrameAcquisitionNumber, k & 0xFFFF),
                (tags.FrameAcquisitionDateTime, format_dt(utc_ns)),
            ]]),
            # PS3.3 Time of Frame macro, C.7.6.27.1.1: PTP seconds + ns.
            (tags.TimeOfFrameGroupSequence, [[
                (tags.FrameOriginTimestamp, nmos.ptp_timestamp(origin_tai_ns)),
            ]]),
        ]
        dynamic = encode_dataset([(tags.CurrentFrameFunctionalGroupsSequence, [item])],
                                 explicit=True, charset=self._charset, undefined_length=False)
        return self._meta + dynamic + (self._static if static else b"")

    def packets(self, k, timestamp, origin_tai_ns, sync_tai_ns=None, static=None):
        """The datagrams of frame k's payload per PACKETIZATION_RULE.
        timestamp is the video frame's RTP timestamp; sync_tai_ns the PTP
        time it stands for (default: origin_tai_ns)."""
        data = memoryview(self.payload(k, origin_tai_ns, static))
        sync = origin_tai_ns if sync_tai_ns is None else sync_tai_ns

        def identity(flags):
            return one_byte_extension(nmos.elements(origin_tai_ns, sync, self.flow_id, self.meta_source_id,
                                                    self.rate, flags))

        # PS3.22: the header extension bit X is 1 on every metadata packet.
        # The NMOS in-stream identity and timing elements go on the grain's
        # first and last packets, the grain flags saying which (S on the
        # first, E on the last, both on a grain of one packet); a packet in
        # between carries the grain flags alone, neither set.
        first_ext, last_ext, only_ext = (identity(nmos.GRAIN_START), identity(nmos.GRAIN_END),
                                         identity(nmos.GRAIN_START | nmos.GRAIN_END))
        middle_ext = one_byte_extension([(nmos.GRAIN_FLAGS, b"\x00")])
        out = []
        pos, end = 0, len(data)
        first = True
        while first or pos < end:
            closing = only_ext if first else last_ext
            if end - pos <= self.max_datagram - HEADER_SIZE - len(closing):
                ext, stop = closing, end
            else:
                ext = first_ext if first else middle_ext
                room = self.max_datagram - HEADER_SIZE - len(ext)
                if room <= 0:
                    raise ValueError("max_datagram %d leaves no room for metadata" % self.max_datagram)
                stop = pos + room
            seq = self.sequence
            self.sequence = (seq + 1) & 0xFFFFFFFF
            head = rtp_header(self.payload_type, seq, timestamp, self.ssrc, marker=stop == end, extension=True)
            out.append(head + ext + data[pos:stop])
            pos = stop
            first = False
        return out
