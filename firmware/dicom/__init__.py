"""DICOM encoding core (PS3.5, PS3.6, PS3.10), sans-I/O: values in, bytes out."""
