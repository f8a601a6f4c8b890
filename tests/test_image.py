"""The image builder's parts that need no QEMU (tools/image): the ELF
reader against binutils' readelf, the initramfs's cpio format against the
kernel's description of it, the data partition against e2fsprogs' debugfs.
The whole image is tested by booting it (tests/test_emulator.py)."""

import glob
import gzip
import io
import json
import os
import re
import stat

import pytest

from tests.conftest import run, tool
from tools.image import elf
from tools.image.build import Image, make_data_disk
from tools.image.cpio import CpioWriter


def readelf_needed(path):
    out = run([tool("readelf"), "-d", path]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_needed_libraries_as_readelf_reads_them():
    candidates = ["/usr/bin/python3.11", "/usr/bin/storescp", "/usr/bin/dciodvfy"]
    candidates += sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libssl.so.*"))[:1]
    candidates += sorted(glob.glob("/usr/lib/python3*/lib-dynload/_ssl*.so"))[:1]
    checked = 0
    for path in candidates:
        if not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        assert elf.needed(real) == readelf_needed(real), path
        checked += 1
    assert checked >= 3


def test_elf_reader_refuses_what_is_not_elf64_le(tmp_path):
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="not an ELF"):
        elf.needed(str(text))


def parse_newc(data):
    """Entries of a newc archive, read as buffer-format.rst describes it:
    (name, mode, rdev, data); the header is "070701" and 13 8-digit hex
    fields, name and data each padded to 4 bytes."""
    entries, at = [], 0
    while True:
        assert data[at:at + 6] == b"070701", at
        fields = [int(data[at + 6 + 8 * i: at + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[at + 110: at + 110 + namesize - 1].decode()
        assert data[at + 110 + namesize - 1] == 0
        at = (at + 110 + namesize + 3) & ~3
        body = data[at: at + filesize]
        at = (at + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries.append((name, fields[1], (fields[9], fields[10]), body, fields[2:4]))


def test_cpio_newc_entries_and_padding():
    out = io.BytesIO()
    cpio = CpioWriter(out, mtime=1234)
    cpio.directory("dev")
    cpio.char_device("dev/console", 5, 1)
    cpio.file("init", b"#!/bin/sh\n", 0o755)
    cpio.symlink("sh", "bin/busybox")
    cpio.file("odd", b"x" * 5)
    cpio.close()
    data = out.getvalue()
    assert len(data) % 512 == 0
    entries = parse_newc(data)
    assert [e[0] for e in entries] == ["dev", "dev/console", "init", "sh", "odd"]
    by_name = {e[0]: e for e in entries}
    assert stat.S_ISDIR(by_name["dev"][1])
    assert stat.S_ISCHR(by_name["dev/console"][1]) and by_name["dev/console"][2] == (5, 1)
    assert by_name["init"][1] == stat.S_IFREG | 0o755 and by_name["init"][3] == b"#!/bin/sh\n"
    assert stat.S_ISLNK(by_name["sh"][1]) and by_name["sh"][3] == b"bin/busybox"
    assert by_name["odd"][3] == b"xxxxx"
    assert all(e[4] == [0, 0] for e in entries)  # owned by root, whoever builds


def test_image_puts_parents_first_and_is_reproducible(tmp_path):
    def make(path):
        image = Image()
        image.data("usr/lib/python3.11/os.py", b"# os\n")
        image.symlink("usr/bin/python3", "python3.11")
        image.add("dev/console", ("chr", 5, 1))
        image.write(path)
        with gzip.open(path) as f:
            return f.read()

    first = make(str(tmp_path / "a.gz"))
    make(str(tmp_path / "b.gz"))
    with open(str(tmp_path / "a.gz"), "rb") as a, open(str(tmp_path / "b.gz"), "rb") as b:
        assert a.read() == b.read()
    names = [e[0] for e in parse_newc(first)]
    assert names == ["dev", "dev/console", "usr", "usr/bin", "usr/bin/python3", "usr/lib", "usr/lib/python3.11",
                     "usr/lib/python3.11/os.py"]


def test_data_partition_holds_the_configuration_and_an_empty_spool(tmp_path):
    path = make_data_disk(str(tmp_path / "data.img"), "qemu_virt", size_mib=64,
                          config={"board": "qemu_virt", "pacs": {"port": 11112}})
    debugfs = tool("debugfs")
    assert json.loads(run([debugfs, "-R", "cat /modgate.json", path]).stdout) == \
        {"board": "qemu_virt", "pacs": {"port": 11112}}
    listing = run([debugfs, "-R", "ls -l /spool", path]).stdout
    assert re.findall(r"\s(\S+)\s*$", listing, re.M)[:2] == [".", ".."] and len(listing.strip().splitlines()) == 2
    stats = run([debugfs, "-R", "stats", path]).stdout
    assert "modgate-data" in stats and "has_journal" in stats
    factory = make_data_disk(str(tmp_path / "factory.img"), "qemu_virt", size_mib=64)
    assert json.loads(run([debugfs, "-R", "cat /modgate.json", factory]).stdout) == \
        {"board": "qemu_virt", "clip": {"mode": "command"}, "spool": {"max_bytes": 768 * 1024 ** 2}}
