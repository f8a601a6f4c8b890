"""DIMSE services, one small file each, on the one association driver
(firmware/association.py): verification (C-ECHO, PS3.4 A) and storage
(C-STORE SCU, PS3.4 B). Each says which messages to send and what answers
it expects; the driver does the waiting and the I/O."""
