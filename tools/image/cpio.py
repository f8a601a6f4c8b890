"""A cpio archive writer in the "newc" format, the one the Linux kernel
unpacks as an initramfs (Documentation/driver-api/early-userspace/
buffer-format.rst). Written here rather than run through cpio(1) so that
device nodes (/dev/console) go in without root, owners are 0:0 and times
are fixed: the same tree gives the same bytes.
"""

import stat

TRAILER = "TRAILER!!!"


class CpioWriter:
    """Entries in the order added; the caller adds a folder before what is
    in it (the kernel creates each path as it reads it)."""

    def __init__(self, out, mtime=0):
        self.out = out
        self.mtime = mtime
        self.ino = 1
        self.written = 0

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_bytes = name.encode() + b"\0"
        # buffer-format.rst: "070701", then 13 fields of 8 hex digits: ino,
        # mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        # rdevmajor, rdevminor, namesize, check (0 for newc).
        header = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, self.mtime, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0))
        self.ino += 1
        # The name and the data are each padded to a multiple of 4 bytes,
        # counted from the start of the archive (the header is 110 bytes).
        self._write(header.encode() + name_bytes)
        self._pad()
        if data:
            self._write(data)
            self._pad()

    def _write(self, data):
        self.out.write(data)
        self.written += len(data)

    def _pad(self):
        if self.written % 4:
            self._write(b"\0" * (4 - self.written % 4))

    def directory(self, name, mode=0o755):
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor, mode=0o600):
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def close(self):
        self._entry(TRAILER, 0)
        # Pad to 512 bytes, as cpio(1) does; the kernel does not need it.
        if self.written % 512:
            self._write(b"\0" * (512 - self.written % 512))
