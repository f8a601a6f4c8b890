"""An example of a real gateway box on an NXP i.MX 8M Plus SoC.

EXAMPLE, NOT TESTED ON HARDWARE: this file shows how a real box would be
described and why; the numbers are reasoned from public documentation, not
measured. Check every device name on the actual board before relying on it.

- Acquisition: the modality's HDMI (or DVI) output goes into an HDMI-to-MIPI
  CSI-2 bridge such as the Toshiba TC358743, whose 4-lane CSI-2 link feeds
  the SoC's CSI-2 receiver and the ISI (Image Sensing Interface), which
  writes frames to memory and is the V4L2 capture node. The node number
  depends on probe order; a udev rule giving it a fixed name is wiser than
  /dev/video0. The bridge sends 8-bit 4:2:2, so 'ycbcr422' needs no colour
  conversion. The mainline ISI driver writes packed 4:2:2 only as YUYV,
  not UYVY (drivers/media/platform/nxp/imx8-isi/imx8-isi-video.c);
  hal.acq.v4l2 accepts YUYV and reorders it to modgate's UYVY. The ISI is
  a multi-planar V4L2 device (VIDEO_CAPTURE_MPLANE only); the capture
  driver uses that API when a node has no single-planar one (checked in
  the emulated box on vivid loaded multi-planar).
- Rate: 30/1 rather than 60/1. A 1080p 4:2:2 frame is 3.96 MiB; at 30 fps
  the spool takes about 124 MB/s, at 60 fps about 250 MB/s, more than a
  typical eMMC keeps up in sustained writes. The bridge itself does 1080p60
  if the modality needs it (then record at reduced rate or to faster media).
  Note also that an uncompressed 1080p30 4:2:2 8-bit stream is about
  1 Gbit/s of pixels alone (ST 2110-20), more than 1 GbE carries once
  RTP/UDP/IP/Ethernet overhead is added: the live stream on this box has to
  be smaller than the recording (scaled down by the ISI, or a lower rate).
- Network: the SoC has two Gigabit MACs, the FEC and the EQoS (TSN
  capable); both have an IEEE 1588 hardware clock. Which one is eth0, and
  which PHC is /dev/ptp0, depends on the device tree and probe order:
  `ethtool -T eth0` names the PHC of eth0. PS3.22 timing wants that PHC
  disciplined by ptp4l (SMPTE ST 2059-2 profile).
- Console: UART2, /dev/ttymxc1 at 115200 8N1, the debug UART of NXP's
  evaluation kit.
- Storage: a data partition on the eMMC mounted at /data, so a full spool
  cannot fill the root file system.
- Memory: a 2 GiB module. modgate gets 256 MiB for its frames in flight
  and its PDU and RTP buffers (at 3.96 MiB a frame that is a few dozen
  frames, so frames go to the spool as they arrive, never pile up); the
  rest is Linux, the CMA pool the ISI's four DMA buffers (16 MiB) and the
  video encoder allocate from, and the encoder pipeline.
"""

BOARD = {
    "name": "imx8mp_gateway",
    "description": "example (not tested on hardware): i.MX 8M Plus, TC358743 HDMI->CSI-2, 1 GbE with PTP",
    "memory_budget_mib": 256,
    "acquisition": {"driver": "v4l2", "device": "/dev/video0",
                    "width": 1920, "height": 1080, "pixel": "ycbcr422", "rate": (30, 1),
                    "buffers": 4},
    "nic": {"driver": "linux", "name": "eth0"},
    "console": {"driver": "tty", "device": "/dev/ttymxc1", "baudrate": 115200},
    "storage": {"root": "/data/spool"},
    # The i.MX 8M Plus VPU's H.264 encoder through the V4L2 stateful encoder
    # API (hal/codec/v4l2m2m.py finds the M2M node with H.264 out), and
    # libturbojpeg for stills. The bridge's ycbcr422 goes to the VPU's 4:2:0
    # with libyuv (UYVYToNV12) and is recorded as H.264 (the video IODs'
    # default); uncompressed or JPEG clips would need rgb8 from the ISI.
    "codec": {"h264": "v4l2-m2m", "jpeg": "turbojpeg"},
    # The live stream's sending thread at SCHED_FIFO 50 (hal/clock.py
    # realtime_thread): modgate runs as root on the box.
    "clock": {"phc": "/dev/ptp0", "realtime_priority": 50},
    "serial_number": {"file": "/sys/devices/soc0/serial_number"},  # the SoC's unique ID (drivers/soc/imx/soc-imx8m.c)
}
