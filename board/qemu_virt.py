"""The emulated ARM box: QEMU's generic 'virt' machine (-M virt) running a
Linux guest, so the firmware runs on an ARM kernel with real drivers and no
hardware.

- Acquisition: the kernel's vivid test driver (modprobe vivid) as
  /dev/video0. Its default input is a webcam; vivid offers RGB24 ('rgb8')
  and, at 640x480, frame intervals down to 1/25 s only: the webcam input's
  bandwidth limit drops the faster ones unless the module is loaded with
  webcam_bandwidth_limit=0 (drivers/media/test-drivers/vivid/vivid-vid-cap.c).
- Network: the virtio-net device, eth0 in the guest (user-mode networking
  reaches the host through QEMU's NAT).
- Console: the PL011 UART, /dev/ttyAMA0, which -serial connects to a host
  pty, socket or stdio.
- Storage: the data partition, an ext4 virtio-blk disk (/dev/vda) mounted
  at /data: modgate.json, console.passwd and the spool (/var/spool/modgate
  is a link to /data/spool). The root file system is the initramfs, in RAM
  and rebuilt at every boot (tools/image).
- Memory: 512 MiB of RAM (QEMU -m 512, tools/qemu). The initramfs takes
  about 33 MiB of it (Python, kernel modules, modgate); of the rest, 48 MiB
  is modgate's budget, and the remainder the kernel's and the page cache's.
  A 640x480 rgb8 frame is 0.9 MiB.
"""

BOARD = {
    "name": "qemu_virt",
    "description": "QEMU -M virt ARM guest: vivid /dev/video0, virtio-net eth0, PL011 ttyAMA0",
    "memory_budget_mib": 48,
    "acquisition": {"driver": "v4l2", "device": "/dev/video0",
                    "width": 640, "height": 480, "pixel": "rgb8", "rate": (25, 1)},
    "nic": {"driver": "linux", "name": "eth0"},
    "console": {"driver": "tty", "device": "/dev/ttyAMA0", "baudrate": 115200},
    "storage": {"root": "/var/spool/modgate"},
    # Software codecs (hal/codec): libx264 + libyuv, libturbojpeg, arm64 builds.
    "codec": {"h264": "x264", "jpeg": "turbojpeg"},
    # virtio-net has no PTP hardware clock. No real-time priority: under TCG
    # the stream is bound by the CPU, and a SCHED_FIFO sender would starve
    # the console and the recorder.
    "clock": {"phc": None},
}
