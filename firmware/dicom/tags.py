"""The data elements modgate writes, as constants (PS3.6 Table 6-1).

Only the tags the firmware uses, never the whole data dictionary: a tag is
``0xGGGGEEEE`` and ``VR`` gives its Value Representation. Names are the
standard's keywords so a reader can look each one up in PS3.6.
"""

from firmware.compat import const

# PS3.10 7.1: File Meta Information (group 0002, always Explicit VR LE).
FileMetaInformationGroupLength = const(0x00020000)
FileMetaInformationVersion = const(0x00020001)
MediaStorageSOPClassUID = const(0x00020002)
MediaStorageSOPInstanceUID = const(0x00020003)
TransferSyntaxUID = const(0x00020010)
ImplementationClassUID = const(0x00020012)
ImplementationVersionName = const(0x00020013)
SourceApplicationEntityTitle = const(0x00020016)
# PS3.10 7.3 / PS3.22: the RTV Meta Information of a real-time payload.
RTVMetaInformationVersion = const(0x00020031)
RTVCommunicationSOPClassUID = const(0x00020032)
RTVCommunicationSOPInstanceUID = const(0x00020033)
RTVSourceIdentifier = const(0x00020035)
RTVFlowIdentifier = const(0x00020036)
RTVFlowRTPSamplingRate = const(0x00020037)
RTVFlowActualFrameDuration = const(0x00020038)

# PS3.3 C.7.6.27: Current Frame Functional Groups (real-time transfer only).
CurrentFrameFunctionalGroupsSequence = const(0x00060001)
# PS3.3 C.7.6.16.2.2 Frame Content and the real-time Time of Frame macro.
FrameAcquisitionDateTime = const(0x00189074)
FrameReferenceDateTime = const(0x00189151)
FrameContentSequence = const(0x00209111)
FrameAcquisitionNumber = const(0x00209156)
# PS3.3 C.7.6.26 Real-Time Bulk Data Flow, C.7.6.27.1.1 Frame Origin Timestamp.
FlowIdentifierSequence = const(0x00340001)
FlowIdentifier = const(0x00340002)
FlowTransferSyntaxUID = const(0x00340003)
FlowRTPSamplingRate = const(0x00340004)
SourceIdentifier = const(0x00340005)
FrameOriginTimestamp = const(0x00340007)
RealTimeBulkDataFlowSequence = const(0x0034000A)
TimeOfFrameGroupSequence = const(0x0034000D)

# SOP Common, General Study, General Series, General Equipment, General Image.
SpecificCharacterSet = const(0x00080005)
ImageType = const(0x00080008)
InstanceCreationDate = const(0x00080012)
InstanceCreationTime = const(0x00080013)
SOPClassUID = const(0x00080016)
AcquisitionUID = const(0x00080017)  # PS3.3 C.7.10.1 General Acquisition
SOPInstanceUID = const(0x00080018)
StudyDate = const(0x00080020)
SeriesDate = const(0x00080021)
AcquisitionDate = const(0x00080022)
ContentDate = const(0x00080023)
AcquisitionDateTime = const(0x0008002A)
StudyTime = const(0x00080030)
SeriesTime = const(0x00080031)
AcquisitionTime = const(0x00080032)
ContentTime = const(0x00080033)
AccessionNumber = const(0x00080050)
Modality = const(0x00080060)
ConversionType = const(0x00080064)
Manufacturer = const(0x00080070)
InstitutionName = const(0x00080080)
ReferringPhysicianName = const(0x00080090)
StationName = const(0x00081010)
StudyDescription = const(0x00081030)
SeriesDescription = const(0x0008103E)
ManufacturerModelName = const(0x00081090)
RecommendedDisplayFrameRate = const(0x00082144)
AnatomicRegionSequence = const(0x00082218)

# Code Sequence Macro (PS3.3 Table 8.8-1).
CodeValue = const(0x00080100)
CodingSchemeDesignator = const(0x00080102)
CodeMeaning = const(0x00080104)

# Patient.
PatientName = const(0x00100010)
PatientID = const(0x00100020)
PatientBirthDate = const(0x00100030)
PatientSex = const(0x00100040)

# Equipment, Cine.
CineRate = const(0x00180040)
DeviceSerialNumber = const(0x00181000)
SoftwareVersions = const(0x00181020)
FrameTime = const(0x00181063)

# PS3.3 C.7.4.2 Synchronization.
SynchronizationTrigger = const(0x0018106A)
AcquisitionTimeSynchronized = const(0x00181800)
TimeDistributionProtocol = const(0x00181802)
SynchronizationFrameOfReferenceUID = const(0x00200200)

# PS3.3 C.7.6.28 Real-Time Acquisition.
StereoPairsPresent = const(0x00220028)
SharedFunctionalGroupsSequence = const(0x52009229)

# PS3.3 C.11.15 ICC Profile.
ICCProfile = const(0x00282000)
ColorSpace = const(0x00282002)

# Relationship.
StudyInstanceUID = const(0x0020000D)
SeriesInstanceUID = const(0x0020000E)
StudyID = const(0x00200010)
SeriesNumber = const(0x00200011)
InstanceNumber = const(0x00200013)
PatientOrientation = const(0x00200020)
Laterality = const(0x00200060)

# Image Pixel, Multi-frame, Secondary Capture.
SamplesPerPixel = const(0x00280002)
PhotometricInterpretation = const(0x00280004)
PlanarConfiguration = const(0x00280006)
NumberOfFrames = const(0x00280008)
FrameIncrementPointer = const(0x00280009)
Rows = const(0x00280010)
Columns = const(0x00280011)
BitsAllocated = const(0x00280100)
BitsStored = const(0x00280101)
HighBit = const(0x00280102)
PixelRepresentation = const(0x00280103)
BurnedInAnnotation = const(0x00280301)
RecognizableVisualFeatures = const(0x00280302)
RescaleIntercept = const(0x00281052)
RescaleSlope = const(0x00281053)
RescaleType = const(0x00281054)
LossyImageCompression = const(0x00282110)
LossyImageCompressionRatio = const(0x00282112)
LossyImageCompressionMethod = const(0x00282114)

# Acquisition Context, Presentation LUT, Pixel Data.
AcquisitionContextSequence = const(0x00400555)
PresentationLUTShape = const(0x20500020)
PixelData = const(0x7FE00010)

# PS3.4 K.6.1.2 (Table K.6-1): the Modality Worklist's query and return keys
# beyond those above.
OtherPatientIDsSequence = const(0x00101002)
RequestedProcedureDescription = const(0x00321060)
RequestedProcedureCodeSequence = const(0x00321064)
AdmissionID = const(0x00380010)
ScheduledStationAETitle = const(0x00400001)
ScheduledProcedureStepStartDate = const(0x00400002)
ScheduledProcedureStepStartTime = const(0x00400003)
ScheduledPerformingPhysicianName = const(0x00400006)
ScheduledProcedureStepDescription = const(0x00400007)
ScheduledProtocolCodeSequence = const(0x00400008)
ScheduledProcedureStepID = const(0x00400009)
ScheduledProcedureStepSequence = const(0x00400100)
RequestedProcedureID = const(0x00401001)

# PS3.3 C.4.13-C.4.16 (Modality Performed Procedure Step, PS3.4 F.7.2).
RetrieveAETitle = const(0x00080054)
ReferencedStudySequence = const(0x00081110)
ReferencedPatientSequence = const(0x00081120)
ProcedureCodeSequence = const(0x00081032)
PerformingPhysicianName = const(0x00081050)
OperatorsName = const(0x00081070)
ReferencedImageSequence = const(0x00081140)
ReferencedSOPClassUID = const(0x00081150)
ReferencedSOPInstanceUID = const(0x00081155)
ProtocolName = const(0x00181030)
ReferencedNonImageCompositeSOPInstanceSequence = const(0x00400220)
PerformedStationAETitle = const(0x00400241)
PerformedStationName = const(0x00400242)
PerformedLocation = const(0x00400243)
PerformedProcedureStepStartDate = const(0x00400244)
PerformedProcedureStepStartTime = const(0x00400245)
PerformedProcedureStepEndDate = const(0x00400250)
PerformedProcedureStepEndTime = const(0x00400251)
PerformedProcedureStepStatus = const(0x00400252)
PerformedProcedureStepID = const(0x00400253)
PerformedProcedureStepDescription = const(0x00400254)
PerformedProcedureTypeDescription = const(0x00400255)
PerformedProtocolCodeSequence = const(0x00400260)
ScheduledStepAttributesSequence = const(0x00400270)
PerformedProcedureStepDiscontinuationReasonCodeSequence = const(0x00400281)
PerformedSeriesSequence = const(0x00400340)
RequestAttributesSequence = const(0x00400275)  # PS3.3 C.7.3.1 General Series, Type 3
ReferencedPerformedProcedureStepSequence = const(0x00081111)  # PS3.3 C.7.3.1 General Series, Type 3

# PS3.4 J.3 (Storage Commitment Push Model): the action and event
# information.
FailureReason = const(0x00081197)
FailedSOPSequence = const(0x00081198)
ReferencedSOPSequence = const(0x00081199)
TransactionUID = const(0x00081195)

# PS3.5 7.5: item and delimitation tags (no VR of their own).
Item = const(0xFFFEE000)
ItemDelimitationItem = const(0xFFFEE00D)
SequenceDelimitationItem = const(0xFFFEE0DD)

VR = {
    FileMetaInformationGroupLength: "UL",
    RTVMetaInformationVersion: "OB",
    RTVCommunicationSOPClassUID: "UI",
    RTVCommunicationSOPInstanceUID: "UI",
    RTVSourceIdentifier: "OB",
    RTVFlowIdentifier: "OB",
    RTVFlowRTPSamplingRate: "UL",
    RTVFlowActualFrameDuration: "FD",
    CurrentFrameFunctionalGroupsSequence: "SQ",
    FrameAcquisitionDateTime: "DT",
    FrameReferenceDateTime: "DT",
    FrameContentSequence: "SQ",
    FrameAcquisitionNumber: "US",
    FlowIdentifierSequence: "SQ",
    FlowIdentifier: "OB",
    FlowTransferSyntaxUID: "UI",
    FlowRTPSamplingRate: "UL",
    SourceIdentifier: "OB",
    FrameOriginTimestamp: "OB",
    RealTimeBulkDataFlowSequence: "SQ",
    TimeOfFrameGroupSequence: "SQ",
    FileMetaInformationVersion: "OB",
    MediaStorageSOPClassUID: "UI",
    MediaStorageSOPInstanceUID: "UI",
    TransferSyntaxUID: "UI",
    ImplementationClassUID: "UI",
    ImplementationVersionName: "SH",
    SourceApplicationEntityTitle: "AE",
    SpecificCharacterSet: "CS",
    ImageType: "CS",
    InstanceCreationDate: "DA",
    InstanceCreationTime: "TM",
    SOPClassUID: "UI",
    AcquisitionUID: "UI",
    SOPInstanceUID: "UI",
    StudyDate: "DA",
    SeriesDate: "DA",
    AcquisitionDate: "DA",
    ContentDate: "DA",
    AcquisitionDateTime: "DT",
    StudyTime: "TM",
    SeriesTime: "TM",
    AcquisitionTime: "TM",
    ContentTime: "TM",
    AccessionNumber: "SH",
    Modality: "CS",
    ConversionType: "CS",
    Manufacturer: "LO",
    InstitutionName: "LO",
    ReferringPhysicianName: "PN",
    StationName: "SH",
    StudyDescription: "LO",
    SeriesDescription: "LO",
    ManufacturerModelName: "LO",
    RecommendedDisplayFrameRate: "IS",
    AnatomicRegionSequence: "SQ",
    CodeValue: "SH",
    CodingSchemeDesignator: "SH",
    CodeMeaning: "LO",
    PatientName: "PN",
    PatientID: "LO",
    PatientBirthDate: "DA",
    PatientSex: "CS",
    CineRate: "IS",
    DeviceSerialNumber: "LO",
    SoftwareVersions: "LO",
    FrameTime: "DS",
    SynchronizationTrigger: "CS",
    AcquisitionTimeSynchronized: "CS",
    TimeDistributionProtocol: "CS",
    SynchronizationFrameOfReferenceUID: "UI",
    StereoPairsPresent: "CS",
    SharedFunctionalGroupsSequence: "SQ",
    ICCProfile: "OB",
    ColorSpace: "CS",
    StudyInstanceUID: "UI",
    SeriesInstanceUID: "UI",
    StudyID: "SH",
    SeriesNumber: "IS",
    InstanceNumber: "IS",
    PatientOrientation: "CS",
    Laterality: "CS",
    SamplesPerPixel: "US",
    PhotometricInterpretation: "CS",
    PlanarConfiguration: "US",
    NumberOfFrames: "IS",
    FrameIncrementPointer: "AT",
    Rows: "US",
    Columns: "US",
    BitsAllocated: "US",
    BitsStored: "US",
    HighBit: "US",
    PixelRepresentation: "US",
    BurnedInAnnotation: "CS",
    RecognizableVisualFeatures: "CS",
    RescaleIntercept: "DS",
    RescaleSlope: "DS",
    RescaleType: "LO",
    LossyImageCompression: "CS",
    LossyImageCompressionRatio: "DS",
    LossyImageCompressionMethod: "CS",
    AcquisitionContextSequence: "SQ",
    PresentationLUTShape: "CS",
    OtherPatientIDsSequence: "SQ",
    RequestedProcedureDescription: "LO",
    RequestedProcedureCodeSequence: "SQ",
    AdmissionID: "LO",
    ScheduledStationAETitle: "AE",
    ScheduledProcedureStepStartDate: "DA",
    ScheduledProcedureStepStartTime: "TM",
    ScheduledPerformingPhysicianName: "PN",
    ScheduledProcedureStepDescription: "LO",
    ScheduledProtocolCodeSequence: "SQ",
    ScheduledProcedureStepID: "SH",
    ScheduledProcedureStepSequence: "SQ",
    RequestedProcedureID: "SH",
    RetrieveAETitle: "AE",
    ReferencedStudySequence: "SQ",
    ReferencedPatientSequence: "SQ",
    ProcedureCodeSequence: "SQ",
    PerformingPhysicianName: "PN",
    OperatorsName: "PN",
    ReferencedImageSequence: "SQ",
    ReferencedSOPClassUID: "UI",
    ReferencedSOPInstanceUID: "UI",
    ProtocolName: "LO",
    ReferencedNonImageCompositeSOPInstanceSequence: "SQ",
    PerformedStationAETitle: "AE",
    PerformedStationName: "SH",
    PerformedLocation: "SH",
    PerformedProcedureStepStartDate: "DA",
    PerformedProcedureStepStartTime: "TM",
    PerformedProcedureStepEndDate: "DA",
    PerformedProcedureStepEndTime: "TM",
    PerformedProcedureStepStatus: "CS",
    PerformedProcedureStepID: "SH",
    PerformedProcedureStepDescription: "LO",
    PerformedProcedureTypeDescription: "LO",
    PerformedProtocolCodeSequence: "SQ",
    ScheduledStepAttributesSequence: "SQ",
    PerformedProcedureStepDiscontinuationReasonCodeSequence: "SQ",
    PerformedSeriesSequence: "SQ",
    FailureReason: "US",
    ReferencedPerformedProcedureStepSequence: "SQ",
    FailedSOPSequence: "SQ",
    ReferencedSOPSequence: "SQ",
    TransactionUID: "UI",
    RequestAttributesSequence: "SQ",
}


def tag_str(tag):
    """'(GGGG,EEEE)', the way PS3.6 writes a tag."""
    return "(%04X,%04X)" % (tag >> 16, tag & 0xFFFF)
