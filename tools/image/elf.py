"""Just enough ELF reading to assemble an arm64 root file system on an x86
host, where the target's own tools (ldd, depmod, modprobe) cannot run:

- needed(): a shared object's or program's DT_NEEDED libraries, so the
  image carries the libraries Python and its extension modules load;
- modinfo(): a kernel module's .modinfo strings ("depends=", "softdep="),
  so the image carries a module's dependencies and a modules.dep that
  busybox modprobe reads (Debian's kernel package ships no modules.dep:
  depmod makes it at install time).

ELF layout from the System V gABI (ELF-64 Object File Format, sections 3
and 5); only little-endian ELF64 is read, which is what arm64 Linux uses.
"""

import struct

SHT_DYNAMIC = 6
DT_NEEDED = 1


def _sections(data):
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if data[4] != 2 or data[5] != 1:  # EI_CLASS ELFCLASS64, EI_DATA ELFDATA2LSB
        raise ValueError("not a little-endian ELF64 file")
    # ELF header: e_shoff at 0x28; e_shentsize, e_shnum, e_shstrndx at 0x3A.
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = []
    for i in range(shnum):
        # Elf64_Shdr: name, type (4 bytes each), flags, addr, offset, size
        # (8 each), link, info (4 each), addralign, entsize (8 each).
        name, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * shentsize)
        sections.append({"name": name, "type": kind, "offset": offset, "size": size, "link": link,
                         "entsize": entsize})
    names = sections[shstrndx]
    for s in sections:
        s["name"] = _cstring(data, names["offset"] + s["name"])
    return sections


def _cstring(data, offset):
    return data[offset:data.index(b"\0", offset)].decode("ascii", "replace")


def needed(path):
    """The DT_NEEDED entries of an ELF program or shared object, in order."""
    with open(path, "rb") as f:
        data = f.read()
    sections = _sections(data)
    out = []
    for s in sections:
        if s["type"] != SHT_DYNAMIC:
            continue
        strtab = sections[s["link"]]["offset"]
        for off in range(s["offset"], s["offset"] + s["size"], 16):
            tag, value = struct.unpack_from("<qQ", data, off)
            if tag == 0:  # DT_NULL ends the array
                break
            if tag == DT_NEEDED:
                out.append(_cstring(data, strtab + value))
    return out


def modinfo(path):
    """A kernel module's .modinfo as {key: [values]} (modpost writes
    "key=value" strings separated by NULs)."""
    with open(path, "rb") as f:
        data = f.read()
    for s in _sections(data):
        if s["name"] == ".modinfo":
            info = {}
            for item in data[s["offset"]:s["offset"] + s["size"]].split(b"\0"):
                if b"=" in item:
                    key, value = item.decode("utf-8", "replace").split("=", 1)
                    info.setdefault(key, []).append(value)
            return info
    raise ValueError("%s: no .modinfo section (not a kernel module?)" % path)


def module_dependencies(path):
    """The module names a module needs loaded first: its depends= list and
    the 'pre:' modules of its softdep= (ext4 names crc32c that way, since it
    asks the crypto API for it by name rather than linking a symbol)."""
    info = modinfo(path)
    names = []
    for value in info.get("depends", []):
        names += [n for n in value.split(",") if n]
    for value in info.get("softdep", []):
        words = value.split()
        take = False
        for w in words:
            if w.endswith(":"):
                take = w == "pre:"
            elif take:
                names.append(w)
    return names
