"""The development host: the simulated acquisition board paced by the
system clock, the loopback interface, stdin/stdout as the console and a
spool in the working directory. Everything a test or a demo needs, with no
device to open and nothing to configure."""

BOARD = {
    "name": "host",
    "description": "development host: simulated 720p30 source, loopback, stdio console",
    # A 1280x720 rgb8 frame is 2.6 MiB; 64 MiB leaves room for a few in
    # flight plus PDU and RTP buffers, and is what the small boards must
    # also fit, so the host shows budget overruns early.
    "memory_budget_mib": 64,
    "acquisition": {"driver": "sim", "width": 1280, "height": 720, "pixel": "rgb8", "rate": (30, 1)},
    "nic": {"driver": "loopback", "name": "lo"},
    "console": {"driver": "stdio", "device": None},
    "storage": {"root": "./modgate-spool"},
    # Software codecs (hal/codec): libx264 + libyuv, libturbojpeg.
    "codec": {"h264": "x264", "jpeg": "turbojpeg"},
    # The live stream's sending thread runs at SCHED_FIFO 50 where the OS
    # allows it (hal/clock.py realtime_thread): its sleeps then wake on time.
    "clock": {"phc": None, "realtime_priority": 50},
}
