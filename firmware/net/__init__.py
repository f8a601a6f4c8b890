"""DICOM networking, sans-I/O (PS3.7 DIMSE, PS3.8 upper layer): bytes and
events in, bytes and events out. One file per layer: pdu (9.3), fsm (9.2),
acse (7.1, Annex D), dimse (PS3.7 9), message (DIMSE messages on P-DATA,
Annex E), convert (streaming transfer syntax change). The I/O side is the
association driver, firmware/association.py."""
