"""Storage: the file system the spool lives on.

    storage.open_new(path)      a new file for writing (fails if it exists)
    storage.open_read(path)     a ReadHandle (below)
    storage.sync(f)             flush and fsync one open file
    storage.rename(src, dst)    atomic; both directories fsynced afterwards
    storage.remove(path)        and the directory fsynced
    storage.listdir(path)       names, sorted; [] for a missing folder, an
                                OSError for one that cannot be read
    storage.files(path)         the same, regular files only (no folders,
                                no symbolic links)
    storage.write_new(path, data)  a whole small file, fsynced with its folder
    storage.size(path)
    storage.free_bytes()        what the file system still has for us
    storage.makedirs(path)
    storage.exists(path)        any name, even a dangling link

Paths are relative to the storage root. The POSIX driver's durability rests
on fsync(2) of the file before the rename and of the directory after it
(rename(2) is atomic; the directory entry is durable only once its
directory is fsynced)."""

import os


def open_file(path):
    """A ReadHandle on any file by its path (the host's `modgate store`
    sends files that are no spool's)."""
    return ReadHandle(open(path, "rb"))


class ReadHandle:
    """A file open for reading, for a sender that streams it out:

        handle.size                 bytes, when opened
        handle.read(n=-1)           from the current offset (a header)
        handle.read_into(views, offset)
                                    fills the views in order from offset;
                                    the byte count, short only at the end
        handle.close()              (also a context manager)

    read_into is one preadv(2) for a whole batch of PDUs' data where the
    OS has it: no copy, no seek, one system call."""

    def __init__(self, f):
        self._f = f
        self.size = os.fstat(f.fileno()).st_size
        self._preadv = getattr(os, "preadv", None)

    def read(self, n=-1):
        return self._f.read(n)

    def read_into(self, views, offset):
        if self._preadv is not None:
            return self._preadv(self._f.fileno(), views, offset)
        self._f.seek(offset)
        total = 0
        for view in views:
            got = self._f.readinto(view)
            total += got
            if got < len(view):
                break
        return total

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PosixStorage:
    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def path(self, name):
        return os.path.join(self.root, name)

    def makedirs(self, name):
        os.makedirs(self.path(name), exist_ok=True)
        self._sync_dir(os.path.dirname(self.path(name)) or self.root)

    def open_new(self, name):
        return open(self.path(name), "xb")

    def open_read(self, name):
        return open_file(self.path(name))

    def sync(self, f):
        f.flush()
        os.fsync(f.fileno())

    def rename(self, src, dst):
        os.rename(self.path(src), self.path(dst))
        self._sync_dir(os.path.dirname(self.path(dst)))
        if os.path.dirname(src) != os.path.dirname(dst):
            self._sync_dir(os.path.dirname(self.path(src)))

    def remove(self, name):
        os.remove(self.path(name))
        self._sync_dir(os.path.dirname(self.path(name)))

    def listdir(self, name):
        # Only a missing folder is empty; EACCES, EIO and the like propagate,
        # so an unreadable queue is a fault to show, never a quiet "nothing".
        try:
            return sorted(os.listdir(self.path(name)))
        except FileNotFoundError:
            return []

    def files(self, name):
        # scandir's d_type tells files from folders without a stat per name
        # (the sender lists the queue often); links are not followed.
        try:
            with os.scandir(self.path(name)) as entries:
                return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def write_new(self, name, data):
        with open(self.path(name), "xb") as f:
            f.write(data)
            self.sync(f)
        self._sync_dir(os.path.dirname(self.path(name)) or self.root)

    def size(self, name):
        return os.stat(self.path(name)).st_size

    def exists(self, name):
        # lexists: a dangling link is a name too, and must not be replaced.
        return os.path.lexists(self.path(name))

    def free_bytes(self):
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def _sync_dir(self, path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
