"""The emulated box's image: `modgate image build --board qemu_virt --out DIR`
(build.py says what goes in and why; init.py is the box's /init; elf.py and
cpio.py read and write the formats involved). CPython on the host only,
except selftest.py, which runs inside the box."""


def add_arguments(sub):
    """The `image` subcommand of modgate's command line (tools/cli.py)."""
    p = sub.add_parser("image", help="build the emulated box's image (kernel, initramfs, data partition)")
    actions = p.add_subparsers(dest="image_command", metavar="ACTION")
    actions.required = True
    b = actions.add_parser("build", help="build the image from Debian's arm64 packages")
    b.add_argument("--board", default="qemu_virt", help="board to build for (default qemu_virt)")
    b.add_argument("--out", required=True, metavar="DIR", help="folder for Image, initrd.gz, data.img")
    b.add_argument("--cache", metavar="DIR", help="downloads and unpacked packages (default .cache/image)")
    b.add_argument("--kernel", metavar="PACKAGE",
                   help="exact kernel package, e.g. linux-image-6.1.0-56-arm64 (default: what linux-image-arm64 names)")
    b.add_argument("--fresh-data", action="store_true",
                   help="replace DIR/data.img (configuration, password, spool) with the factory one")
    p.set_defaults(func=main)
    return p


def main(args):
    import json
    import os
    import sys

    from tools.image.build import BuildError, build, DEFAULT_CACHE

    if args.fresh_data and os.path.exists(os.path.join(args.out, "data.img")):
        os.remove(os.path.join(args.out, "data.img"))
    try:
        manifest = build(args.board, args.out, cache=args.cache or DEFAULT_CACHE, kernel=args.kernel)
    except BuildError as err:
        sys.stderr.write("modgate image: error: %s\n" % err)
        return 1
    print("image for %s in %s: kernel %s (%s), initrd.gz %.1f MB, %s" % (
        manifest["board"], args.out, manifest["kernel"]["package"], manifest["kernel"]["version"],
        manifest["initrd_bytes"] / 1e6,
        "up to date" if manifest.get("reused") else "built in %.1f s" % manifest["built_in_s"]))
    print(json.dumps(manifest["layout"], indent=2))
    return 0
