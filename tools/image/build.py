"""Build the emulated box's image from Debian's arm64 packages.

    modgate image build --board qemu_virt --out DIR [--cache DIR] [--kernel PKG]

writes into DIR:

  Image            the Debian arm64 kernel (an uncompressed arm64 Image)
  initrd.gz        the root file system, a gzipped newc cpio the kernel
                   unpacks into RAM: busybox, /init (tools/image/init.py),
                   the kernel modules the box needs, CPython 3.11 with the
                   part of its standard library modgate uses (precompiled),
                   modgate's firmware/, hal/, board/ in /opt/modgate, and the
                   factory configuration in /etc/modgate/modgate.json
  data.img         the data partition (ext4, label modgate-data): the
                   configuration, the console password, the spool. Made
                   from factory-data.img only when DIR has none, so a box's
                   settings and spool survive a rebuild
  factory-data.img the data partition as it leaves the factory
  manifest.json    board, kernel, package versions, sizes, QEMU options

Packages are fetched with apt-get download (needs `dpkg --add-architecture
arm64` and `apt-get update`; done here when run as root) and unpacked with
dpkg -x, never installed: no chroot, no binfmt, no root file system mount.
Fetched and unpacked packages are cached (default .cache/image in the work
tree, git-ignored), so a rebuild spends its time on the initramfs only.
"""

import fnmatch
import glob
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from tools.image import elf, kmod
from tools.image.cpio import CpioWriter
from tools.image.init import INIT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CACHE = os.path.join(ROOT, ".cache", "image")
ARCH = "arm64"
TRIPLET = "aarch64-linux-gnu"
PYTHON = "python3.11"
# The bytecode magic of CPython 3.11 (Lib/importlib/_bootstrap_external.py:
# 3495 for 3.11 final; it does not change within a minor release), so .pyc
# files compiled by the host's 3.11 load in the box's 3.11.
PYC_MAGIC_311 = (3495).to_bytes(2, "little") + b"\r\n"

# The metapackage whose dependency names the current kernel ABI, e.g.
# linux-image-6.1.0-56-arm64: resolved to that one exact package, never a
# glob (a glob matches every kernel the archive still has).
KERNEL_META = "linux-image-arm64"
USERLAND = [
    "busybox-static",
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
    # what python3.11 and the extension modules kept below link against
    "libc6", "libssl3", "libexpat1", "zlib1g", "libbz2-1.0", "liblzma5", "libffi8",
    # the codec HAL (hal/codec, through ctypes): H.264 and JPEG Baseline
    "libx264-164", "libyuv0", "libjpeg62-turbo", "libstdc++6", "libgcc-s1", "libturbojpeg0",
]
# Libraries nothing in the image links against: ctypes opens them by soname.
CODEC_LIBRARIES = ("libx264.so.164", "libyuv.so.0", "libturbojpeg.so.0")

BOARDS = {
    "qemu_virt": {
        # Loaded by /init in this order; their dependencies come along.
        "modules": ["virtio_mmio", "virtio_console", "virtio_rng", "virtio_blk", "virtio_net", "ext4", "vivid"],
        # Built here from the kernel's source (tools/image/kmod.py), in
        # /lib/modules/RELEASE/extra: vicodec, the V4L2 M2M codec test
        # driver, for the self-test of hal/codec/v4l2m2m.py.
        "built_modules": ["vicodec"],
        # Clips on command (the console's record start|stop), not back to
        # back from power-on; the spool bounded well inside the partition.
        "config": {"board": "qemu_virt", "clip": {"mode": "command"}, "spool": {"max_bytes": 768 * 1024 ** 2}},
        "data_size_mib": 1024,
    },
}

# The standard library modgate does not use on the box; dropped to keep the
# initramfs (unpacked into the box's RAM at every boot) small.
STDLIB_DROP = {
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "lib2to3", "ensurepip", "pydoc_data", "pydoc.py",
    "distutils", "unittest", "doctest.py", "sqlite3", "curses", "dbm", "venv", "xmlrpc", "wsgiref", "asyncio",
    "multiprocessing", "email", "http", "urllib", "xml", "html", "concurrent", "tomllib", "zoneinfo",
    "site-packages", "dist-packages", "config-3.11-" + TRIPLET, "__phello__", "mailbox.py", "imaplib.py",
    "smtplib.py", "nntplib.py", "ftplib.py", "pdb.py", "idle.py", "optparse.py", "_pydecimal.py", "decimal.py",
}
DYNLOAD_DROP = ("_test", "xx", "_curses", "_dbm", "_sqlite3", "readline", "nis", "ossaudiodev",
                "audioop", "_crypt", "_decimal", "_uuid", "_codecs_", "_multibytecodec", "_lsprof", "_asyncio",
                "_multiprocessing", "_posixshmem", "_zoneinfo")
# modgate's own code on the box: the firmware and its HAL and boards, and
# from tools/ only the box-side self-test.
MODGATE_TREES = ["firmware", "hal", "board"]
MODGATE_FILES = ["tools/__init__.py", "tools/image/__init__.py", "tools/image/selftest.py"]


class BuildError(Exception):
    pass


class DownloadError(BuildError):
    pass


def log(message):
    sys.stderr.write("modgate image: %s\n" % message)


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BuildError("%s failed (%d): %s" % (" ".join(args), result.returncode,
                                                (result.stderr or result.stdout).strip()[-2000:]))
    return result.stdout


# -- packages -------------------------------------------------------------------
def ensure_arm64_apt():
    """apt knows the arm64 packages: the architecture is added and the
    lists are there (both need root; CI's .ci/run does the same)."""
    if ARCH not in _run(["dpkg", "--print-foreign-architectures"]).split():
        if os.geteuid() != 0:
            raise BuildError("dpkg has no %s architecture; run as root: dpkg --add-architecture %s && apt-get update"
                             % (ARCH, ARCH))
        log("adding the %s architecture to dpkg and updating apt's lists" % ARCH)
        _run(["dpkg", "--add-architecture", ARCH])
        _run(["apt-get", "update", "-q"])
    if not glob.glob("/var/lib/apt/lists/*_binary-%s_Packages*" % ARCH):
        if os.geteuid() != 0:
            raise BuildError("apt has no %s lists; run as root: apt-get update" % ARCH)
        _run(["apt-get", "update", "-q"])


def _candidates(packages):
    """{package: (version, depends)} that apt would fetch for each
    package:arm64; packages apt does not know are left out. One apt-cache
    run for all: each run reads the whole lists (about 2 s here)."""
    result = subprocess.run(["apt-cache", "show", "--no-all-versions"] + ["%s:%s" % (p, ARCH) for p in packages],
                            capture_output=True, text=True)
    found = {}
    for stanza in result.stdout.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(" "):
                key, value = line.split(":", 1)
                fields.setdefault(key, value.strip())
        if fields.get("Package") in packages and fields.get("Architecture") in (ARCH, "all"):
            found.setdefault(fields["Package"], (fields.get("Version"), fields.get("Depends", "")))
    return found


def _candidate(package):
    """(version, depends) for one package:arm64, or None."""
    return _candidates([package]).get(package)


def resolve_kernel():
    found = _candidate(KERNEL_META)
    if not found:
        raise BuildError("apt knows no %s:%s" % (KERNEL_META, ARCH))
    for dep in found[1].split(","):
        name = dep.split()[0].split(":")[0]
        if name.startswith("linux-image-") and name != KERNEL_META:
            return name
    raise BuildError("%s depends on no linux-image package: %r" % (KERNEL_META, found[1]))


def deb_name(package, version):
    # apt-get download's file name: the epoch's ':' is written as %3a.
    return "%s_%s_%s.deb" % (package, version.replace(":", "%3a"), ARCH)


def fetch(packages, cache):
    """{package: path of its .deb}, downloading what the cache lacks."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    paths, missing = {}, []
    candidates = _candidates(packages)
    for package in packages:
        found = candidates.get(package)
        if found is None:
            # Offline, or the lists moved on: a cached .deb of the package
            # still builds the image.
            cached = sorted(f for f in os.listdir(debs) if f.startswith(package + "_"))
            if not cached:
                raise BuildError("apt knows no %s:%s and none is cached" % (package, ARCH))
            paths[package] = os.path.join(debs, cached[-1])
            continue
        path = os.path.join(debs, deb_name(package, found[0]))
        paths[package] = path
        if not os.path.exists(path):
            missing.append("%s:%s=%s" % (package, ARCH, found[0]))
    if missing:
        log("downloading %d packages: %s" % (len(missing), " ".join(missing)))
        options = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        try:
            _run(["apt-get", "download", "-q"] + options + missing, cwd=debs)
        except BuildError as err:
            raise DownloadError(str(err))
    for package, path in paths.items():
        if not os.path.exists(path):
            raise BuildError("apt-get download gave no %s" % path)
    return paths


def unpack(deb, cache):
    """The folder dpkg -x unpacked deb into (cached; made under a temporary
    name and renamed, so an interrupted unpack is never taken as done)."""
    target = os.path.join(cache, "unpacked", os.path.basename(deb)[:-4])
    if not os.path.isdir(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.dirname(target))
        _run(["dpkg", "-x", deb, partial])
        os.rename(partial, target)
    return target


class Tree:
    """The unpacked packages seen as one root file system (they do not
    overlap: dpkg would refuse to install them together)."""

    def __init__(self, roots):
        self.roots = roots

    def find(self, path):
        """The real path of /path in the first root that has it (lstat: a
        symlink is found as itself), or None."""
        for root in self.roots:
            candidate = os.path.join(root, path.lstrip("/"))
            if os.path.lexists(candidate):
                return candidate
        return None


# -- the initramfs ----------------------------------------------------------------
class Image:
    """What goes into the initramfs: archive path -> entry, parents first."""

    def __init__(self):
        self.entries = {}

    def directory(self, path):
        path = path.strip("/")
        if not path or path in self.entries:
            return
        self.directory(os.path.dirname(path))
        self.entries[path] = ("dir",)

    def add(self, path, entry):
        path = path.strip("/")
        self.directory(os.path.dirname(path))
        self.entries[path] = entry

    def file(self, path, source, mode=None):
        self.add(path, ("file", source, mode))

    def data(self, path, data, mode=0o644):
        self.add(path, ("data", data, mode))

    def symlink(self, path, target):
        self.add(path, ("symlink", target))

    def write(self, out_path, level=6):
        with open(out_path + ".part", "wb") as raw:
            # No name and mtime=0 in the gzip header too: the same tree, the
            # same bytes.
            with gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=level, mtime=0) as gz:
                cpio = CpioWriter(gz)
                for path in sorted(self.entries):  # a folder sorts before what is in it
                    entry = self.entries[path]
                    kind = entry[0]
                    if kind == "dir":
                        cpio.directory(path)
                    elif kind == "symlink":
                        cpio.symlink(path, entry[1])
                    elif kind == "chr":
                        cpio.char_device(path, entry[1], entry[2])
                    elif kind == "data":
                        cpio.file(path, entry[1], entry[2])
                    else:
                        with open(entry[1], "rb") as f:
                            data = f.read()
                        mode = entry[2] if entry[2] is not None else stat.S_IMODE(os.stat(entry[1]).st_mode)
                        cpio.file(path, data, mode)
                cpio.close()
        os.replace(out_path + ".part", out_path)


def add_library(image, tree, name, added):
    """A shared library by soname, the symlink chain to its file, and what
    it needs in turn (the dynamic loader looks in /lib/TRIPLET and
    /usr/lib/TRIPLET, Debian's multiarch folders)."""
    if name in added:
        return
    for folder in ("/lib/" + TRIPLET, "/usr/lib/" + TRIPLET):
        path = folder + "/" + name
        real = tree.find(path)
        if real is None:
            continue
        added.add(name)
        while os.path.islink(real):
            target = os.readlink(real)
            image.symlink(path, target)
            path = os.path.normpath(os.path.join(os.path.dirname(path), target))
            real = tree.find(path)
            if real is None:
                raise BuildError("broken library link %s -> %s" % (name, target))
        image.file(path, real)
        for dep in elf.needed(real):
            add_library(image, tree, dep, added)
        return
    raise BuildError("library %s is in none of the unpacked packages" % name)


def libraries_present(tree, path, seen=None):
    """Whether every library an ELF file needs (transitively) is there."""
    seen = set() if seen is None else seen
    for dep in elf.needed(path):
        if dep in seen:
            continue
        seen.add(dep)
        real = None
        for folder in ("/lib/" + TRIPLET, "/usr/lib/" + TRIPLET):
            real = tree.find(folder + "/" + dep)
            if real:
                break
        if real is None or not libraries_present(tree, os.path.realpath(real), seen):
            return False
    return True


def add_python(image, tree):
    python = tree.find("/usr/bin/" + PYTHON)
    if python is None:
        raise BuildError("no /usr/bin/%s in the unpacked packages" % PYTHON)
    image.file("/usr/bin/" + PYTHON, python)
    image.symlink("/usr/bin/python3", PYTHON)
    libs = set()
    image.symlink("/lib/ld-linux-aarch64.so.1", "%s/ld-linux-aarch64.so.1" % TRIPLET)
    add_library(image, tree, "ld-linux-aarch64.so.1", libs)
    for dep in elf.needed(python):
        add_library(image, tree, dep, libs)
    stdlib = "/usr/lib/" + PYTHON
    sources = []
    dropped = []
    for root in tree.roots:
        base = os.path.join(root, stdlib.lstrip("/"))
        if not os.path.isdir(base):
            continue
        for folder, dirs, files in os.walk(base):
            rel = os.path.relpath(folder, base)
            if rel == ".":
                dirs[:] = [d for d in dirs if d not in STDLIB_DROP]
                files = [f for f in files if f not in STDLIB_DROP]
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                src = os.path.join(folder, name)
                dest = os.path.normpath(os.path.join(stdlib, rel, name))
                if rel == "lib-dynload":
                    if name.startswith(DYNLOAD_DROP):
                        continue
                    if not libraries_present(tree, src):
                        dropped.append(name.split(".")[0])
                        continue
                    image.file(dest, src)
                    for dep in elf.needed(src):
                        add_library(image, tree, dep, libs)
                    continue
                if os.path.islink(src):
                    image.symlink(dest, os.readlink(src))
                    continue
                image.file(dest, src)
                if name.endswith(".py"):
                    sources.append((src, dest))
    if dropped:
        log("left out extension modules whose libraries are not in the image: %s" % ", ".join(sorted(dropped)))
    for name in CODEC_LIBRARIES:
        add_library(image, tree, name, libs)
        if name not in libs:
            raise BuildError("no %s in the unpacked packages" % name)
    return sources


def add_pyc(image, sources, cache):
    """Precompiled bytecode next to each source, in __pycache__, checked by
    hash only if asked to (PEP 552 unchecked-hash .pyc): the box's root file
    system is rebuilt from the same sources, and compiling at every boot
    under TCG would cost seconds. Only when the host runs CPython 3.11, whose
    bytecode the box's 3.11 loads; otherwise the box compiles as it imports."""
    import py_compile

    if importlib.util.MAGIC_NUMBER != PYC_MAGIC_311:
        log("host Python %s is not 3.11: no precompiled bytecode (slower boot)" % sys.version.split()[0])
        return 0
    pyc_cache = os.path.join(cache, "pyc")
    count = 0
    for src, dest in sources:
        with open(src, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:32]
        compiled = os.path.join(pyc_cache, digest[:2], digest + "-" + hashlib.sha256(dest.encode()).hexdigest()[:8])
        if not os.path.exists(compiled):
            os.makedirs(os.path.dirname(compiled), exist_ok=True)
            try:
                py_compile.compile(src, cfile=compiled + ".part", dfile=dest, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError as err:
                # lib2to3-style test data and the like: the box can live without
                log("not compiled: %s (%s)" % (dest, err.msg.strip().splitlines()[-1]))
                continue
            os.replace(compiled + ".part", compiled)
        folder, name = os.path.split(dest)
        image.file("%s/__pycache__/%s.cpython-311.pyc" % (folder, name[:-3]), compiled, 0o644)
        count += 1
    return count


def add_modules(image, tree, kernel_release, wanted, extra=None):
    """The kernel modules named and their dependencies, with a modules.dep
    (path: dependency paths) for busybox modprobe; extra: {name: path} of
    modules built here, which go in extra/."""
    base = "/lib/modules/%s" % kernel_release
    root = tree.find(base)
    if root is None:
        raise BuildError("no %s in the kernel package" % base)
    index, aliases = {}, []
    for folder, _, files in os.walk(os.path.join(root, "kernel")):
        for name in files:
            if name.endswith(".ko"):
                index[name[:-3].replace("-", "_")] = os.path.join(folder, name)
    built_here = {}
    for name, path in (extra or {}).items():
        index[name] = built_here[name] = path
    builtin = set()
    with open(os.path.join(root, "modules.builtin")) as f:
        for line in f:
            builtin.add(os.path.basename(line.strip())[:-3].replace("-", "_"))

    def find(name):
        name = name.replace("-", "_")
        if name in index:
            return name
        if name in builtin:
            return None
        # A softdep may name an alias (ext4: "crypto-crc32c"): the module
        # that declares it. The aliases are read only when needed.
        if not aliases:
            for mod, path in index.items():
                for alias in elf.modinfo(path).get("alias", []):
                    aliases.append((alias.replace("-", "_"), mod))
        for alias, mod in aliases:
            if fnmatch.fnmatchcase(name, alias):
                return mod
        raise BuildError("kernel module %s: neither a module, an alias nor built in" % name)

    order, deps = [], {}

    def visit(name):
        mod = find(name)
        if mod is None or mod in deps:
            return mod
        deps[mod] = []
        for dep in elf.module_dependencies(index[mod]):
            found = visit(dep)
            if found:
                deps[mod].append(found)
        order.append(mod)
        return mod

    for name in wanted:
        visit(name)

    def rel(mod):
        if mod in built_here:
            return "extra/%s.ko" % mod
        return os.path.relpath(index[mod], root)

    def closure(mod, out):
        for dep in deps[mod]:
            if dep not in out:
                closure(dep, out)
                out.append(dep)
        return out

    lines = []
    for mod in order:
        image.file("%s/%s" % (base, rel(mod)), index[mod], 0o644)
        # modules.dep lists every module to load first, the deepest last.
        lines.append("%s: %s" % (rel(mod), " ".join(rel(d) for d in reversed(closure(mod, [])))))
    image.data(base + "/modules.dep", ("\n".join(lines) + "\n").encode())
    return order


def add_modgate(image):
    sources = []
    for rel in _modgate_sources():
        src = os.path.join(ROOT, rel)
        dest = "/opt/modgate/" + rel
        image.file(dest, src, 0o644)
        sources.append((src, dest))
    return sources


def factory_config(board):
    return json.dumps(BOARDS[board]["config"], indent=2, sort_keys=True) + "\n"


def make_data_disk(path, board="qemu_virt", size_mib=None, config=None):
    """An ext4 data partition holding the factory configuration and an
    empty spool, made with mkfs.ext4 -d (no mount, no root). config: a dict
    for modgate.json instead of the board's factory one. The file is sparse."""
    size_mib = size_mib or BOARDS[board]["data_size_mib"]
    with tempfile.TemporaryDirectory(prefix="modgate-data-") as stage:
        with open(os.path.join(stage, "modgate.json"), "w") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True) + "\n" if config else factory_config(board))
        os.mkdir(os.path.join(stage, "spool"))
        if os.path.exists(path):
            os.remove(path)
        mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
        # -E root_owner: files owned by root in the box whoever builds;
        # no lazy init, so the box's first mount does not zero tables in
        # the background while it records.
        _run([mkfs, "-q", "-F", "-L", "modgate-data", "-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
              "-d", stage, path, "%dM" % size_mib])
    return path


def _modgate_sources():
    files = list(MODGATE_FILES)
    for top in MODGATE_TREES:
        for folder, dirs, names in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [os.path.relpath(os.path.join(folder, n), ROOT) for n in sorted(names) if n.endswith(".py")]
    return files


def inputs_digest(board, debs, built=None):
    """What the image is made of: the packages (by file name, which has the
    version), the modules built here, this builder's code, modgate's
    sources, the host's bytecode magic. The same digest means the same
    image."""
    h = hashlib.sha256()
    h.update(json.dumps([board, BOARDS[board], sorted(os.path.basename(d) for d in debs.values()),
                         importlib.util.MAGIC_NUMBER.hex()], sort_keys=True).encode())
    for name, path in sorted((built or {}).items()):
        with open(path, "rb") as f:
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    builder = os.path.dirname(os.path.abspath(__file__))
    own = sorted(os.path.relpath(os.path.join(builder, n), ROOT) for n in os.listdir(builder) if n.endswith(".py"))
    for rel in own + _modgate_sources():
        h.update(rel.encode() + b"\0")
        with open(os.path.join(ROOT, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def _reusable(out, digest):
    """The manifest of an image in out built from the same inputs, or None."""
    try:
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get("inputs") != digest:
        return None
    if not all(os.path.exists(os.path.join(out, n)) for n in ("Image", "initrd.gz", "factory-data.img")):
        return None
    manifest["reused"] = True
    return manifest


def build(board, out, cache=DEFAULT_CACHE, kernel=None, level=6):
    if board not in BOARDS:
        raise BuildError("no image recipe for board %r; there is one for: %s" % (board, ", ".join(sorted(BOARDS))))
    started = time.monotonic()
    recipe = BOARDS[board]
    ensure_arm64_apt()
    try:
        kernel_package = kernel or resolve_kernel()
        debs = fetch([kernel_package] + USERLAND, cache)
    except DownloadError:
        # apt's lists are older than the archive (a package was replaced
        # by a newer version since): update them and try once more.
        if os.geteuid() != 0:
            raise
        log("download failed; updating apt's lists and trying again")
        _run(["apt-get", "update", "-q"])
        kernel_package = kernel or resolve_kernel()
        debs = fetch([kernel_package] + USERLAND, cache)
    kernel = kernel_package
    kernel_version = os.path.basename(debs[kernel])[:-4].split("_")[1].replace("%3a", ":")
    built, not_built = {}, {}
    for name in recipe.get("built_modules", []):
        try:
            built[name] = kmod.build(name, kernel, kernel_version, cache, log)
        except (kmod.ModuleError, OSError) as err:
            not_built[name] = str(err)
            log("no %s in this image: %s" % (name, err))
    digest = inputs_digest(board, debs, built)
    reused = _reusable(out, digest)
    if reused:
        if not os.path.exists(os.path.join(out, "data.img")):
            make_data_disk(os.path.join(out, "data.img"), board)
        log("%s is up to date (same packages, same sources)" % out)
        return reused
    roots = {p: unpack(d, cache) for p, d in debs.items()}
    kernel_root = roots[kernel]
    tree = Tree([roots[p] for p in USERLAND])
    kernel_tree = Tree([kernel_root])
    release = sorted(os.listdir(os.path.join(kernel_root, "lib", "modules")))[0]

    image = Image()
    for folder in ("dev", "proc", "sys", "run", "tmp", "data", "var/spool", "etc/modgate", "sbin", "usr/sbin"):
        image.directory(folder)
    # The kernel opens /dev/console for init's stdin/stdout before any
    # devtmpfs is mounted: it has to be in the archive (major 5, minor 1).
    image.add("dev/console", ("chr", 5, 1))
    image.file("bin/busybox", tree.find("/bin/busybox"), 0o755)
    image.data("init", INIT.encode(), 0o755)
    image.data("etc/modgate/modgate.json", factory_config(board).encode())
    image.data("etc/passwd", b"root:x:0:0:root:/data:/bin/sh\n")
    image.data("etc/group", b"root:x:0:\n")
    modules = add_modules(image, kernel_tree, release, recipe["modules"] + sorted(built), built)
    sources = add_python(image, tree)
    sources += add_modgate(image)
    compiled = add_pyc(image, sources, cache)

    os.makedirs(out, exist_ok=True)
    vmlinuz = kernel_tree.find("/boot/vmlinuz-" + release)
    shutil.copyfile(vmlinuz, os.path.join(out, "Image.part"))
    os.replace(os.path.join(out, "Image.part"), os.path.join(out, "Image"))
    image.write(os.path.join(out, "initrd.gz"), level)
    factory = make_data_disk(os.path.join(out, "factory-data.img"), board)
    data = os.path.join(out, "data.img")
    if not os.path.exists(data):
        make_data_disk(data, board)
    manifest = {
        "board": board,
        "kernel": {"package": kernel, "version": os.path.basename(debs[kernel])[:-4].split("_")[1],
                   "release": release, "modules": modules, "built_modules": sorted(built),
                   "not_built": not_built},
        "packages": {p: os.path.basename(d) for p, d in debs.items()},
        "initrd_bytes": os.path.getsize(os.path.join(out, "initrd.gz")),
        "initrd_files": sum(1 for e in image.entries.values() if e[0] in ("file", "data")),
        "precompiled": compiled,
        "layout": {
            "kernel": "Image", "initramfs": "initrd.gz (root file system in RAM, rebuilt each boot)",
            "data": "data.img: ext4 on /dev/vda mounted at /data: modgate.json, console.passwd, spool/ "
                    "(/var/spool/modgate links to /data/spool)",
        },
        "qemu": "-M virt -cpu max -m 512",
        "inputs": digest,
        "built_in_s": round(time.monotonic() - started, 1),
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return manifest
