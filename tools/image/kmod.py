"""Kernel modules Debian builds the source of but does not ship, built here
for the box's kernel: `vicodec`, the kernel's V4L2 memory-to-memory codec
test driver (drivers/media/test-drivers/vicodec), for the self-test of the
V4L2 M2M encoder driver (hal/codec/v4l2m2m.py, tools/image/selftest.py
"v4l2m2m"). Debian's kernel config leaves CONFIG_VIDEO_VICODEC unset.

An out-of-tree build (Documentation/kbuild/modules.rst) against Debian's
own packages of the same kernel version, so the module's vermagic and
symbol versions match the box's kernel:

  linux-headers-<abi>-arm64 (arm64)  .config, Module.symvers, generated headers
  linux-headers-<abi>-common         the kernel's headers and Makefiles
  linux-kbuild-<major> (the host's)  fixdep, modpost: they run on the host
  linux-source-<major>               the driver's .c files

and Debian's cross compiler (gcc-aarch64-linux-gnu: the kernel was built
with gcc-12). Fetched with apt-get download and unpacked with dpkg -x, as
build.py does with the rest; nothing is installed. Without the cross
compiler or the packages, build() says why and the image has no vicodec
(the self-test then says so).
"""

import os
import shutil
import subprocess
import tarfile

CROSS_COMPILE = "aarch64-linux-gnu-"
# module name -> its folder in the kernel's source and its Kconfig symbol
SOURCES = {"vicodec": ("drivers/media/test-drivers/vicodec", "CONFIG_VIDEO_VICODEC")}


class ModuleError(Exception):
    """The module cannot be built here; the message says why."""


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise ModuleError("%s failed (%d): %s" % (" ".join(args[:3]), result.returncode,
                                                 (result.stderr or result.stdout).strip()[-1500:]))
    return result.stdout


def build(name, kernel_package, kernel_version, cache, log):
    """The path of module name's .ko built for kernel_package (e.g.
    linux-image-6.1.0-56-arm64) at kernel_version (its Debian version, e.g.
    6.1.192-2), cached in cache/kmod; ModuleError if it cannot be."""
    folder, symbol = SOURCES[name]
    abi = kernel_package[len("linux-image-"):]  # 6.1.0-56-arm64
    release_abi = abi.rsplit("-", 1)[0]  # 6.1.0-56
    major = ".".join(kernel_version.split(".")[:2])  # 6.1
    work = os.path.join(cache, "kmod", "%s-%s" % (abi, kernel_version))
    ko = os.path.join(work, "%s.ko" % name)
    if os.path.exists(ko):
        return ko
    gcc = shutil.which(CROSS_COMPILE + "gcc-12")
    if not gcc:
        raise ModuleError("no %sgcc-12 (Debian: apt-get install gcc-aarch64-linux-gnu)" % CROSS_COMPILE)
    packages = ["linux-headers-%s:arm64=%s" % (abi, kernel_version),
                "linux-headers-%s-common=%s" % (release_abi, kernel_version),
                "linux-kbuild-%s=%s" % (major, kernel_version),
                "linux-source-%s=%s" % (major, kernel_version)]
    debs = os.path.join(work, "debs")
    root = os.path.join(work, "root")
    if not os.path.isdir(root):
        os.makedirs(debs, exist_ok=True)
        log("downloading the kernel's headers, kbuild and source to build %s: %s" % (name, " ".join(packages)))
        options = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        _run(["apt-get", "download", "-q"] + options + packages, cwd=debs)
        partial = root + ".part"
        shutil.rmtree(partial, ignore_errors=True)
        for deb in sorted(os.listdir(debs)):
            _run(["dpkg", "-x", os.path.join(debs, deb), partial])
        os.rename(partial, root)
        shutil.rmtree(debs)
    headers = os.path.join(root, "usr", "src", "linux-headers-" + abi)
    common = os.path.join(root, "usr", "src", "linux-headers-%s-common" % release_abi)
    # The arm64 headers' Makefile includes the common one by its installed,
    # absolute path; point it at the unpacked one (scripts/ and tools/ are
    # relative links into the unpacked linux-kbuild already).
    with open(os.path.join(headers, "Makefile"), "w") as f:
        f.write("include %s/Makefile\n" % common)
    source = os.path.join(work, "src", name)
    if not os.path.isdir(source):
        tarball = os.path.join(root, "usr", "src", "linux-source-%s.tar.xz" % major)
        member = "linux-source-%s/%s/" % (major, folder)
        with tarfile.open(tarball) as tar:
            # The whole xz stream is read once (about 8 s): the folder's
            # files are all that is kept.
            os.makedirs(source + ".part", exist_ok=True)
            for info in tar:
                if info.name.startswith(member) and info.isfile():
                    with tar.extractfile(info) as src, open(os.path.join(source + ".part", os.path.basename(
                            info.name)), "wb") as dst:
                        shutil.copyfileobj(src, dst)
        os.rename(source + ".part", source)
    log("building %s.ko for %s with %s" % (name, abi, gcc))
    _run(["make", "-C", headers, "M=" + source, "ARCH=arm64", "CROSS_COMPILE=" + CROSS_COMPILE, symbol + "=m",
          "modules"])
    built = os.path.join(source, "%s.ko" % name)
    # Debug information is most of its size and nothing the box reads.
    _run([CROSS_COMPILE + "strip", "--strip-debug", "-o", ko + ".part", built])
    os.replace(ko + ".part", ko)
    return ko
