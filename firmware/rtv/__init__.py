"""DICOM PS3.22 real-time video, sans-I/O: the RTP flows of SMPTE ST 2110-10
and -20 and the SDP that describes them. Frames and numbers in, datagrams
and text out; the sender that owns the socket and the clock lives outside.

- rtp: the RFC 3550 fixed header and the ST 2110-10 90 kHz media clock.
- st2110_20: the RFC 4175 / ST 2110-20 uncompressed video packetizer
  (General Packing Mode).
- pacing: ST 2110-21 timing: the wide sender's plan on the media clock's
  epoch, and the network compatibility and virtual receiver buffer models.
- sdp: the RFC 4566 session description of a ST 2110-20 video flow.
"""
