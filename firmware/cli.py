"""The ``modgate`` command line (CPython on the box and on the host).

Each subcommand is a function taking the parsed arguments and returning an
exit status. Bad arguments print one line naming the argument and exit 2.
"""

import argparse
import os
import sys
import time

from firmware import __version__
from firmware.dicom import tags
from firmware.dicom.iod import IODS, PIXEL_FORMATS
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from firmware.dicom.vr import UTF8, encode_value

TRANSFER_SYNTAXES = {"explicit": EXPLICIT_VR_LITTLE_ENDIAN, "implicit": IMPLICIT_VR_LITTLE_ENDIAN}
# The IOD a pixel format gets when --iod is not given.
DEFAULT_IOD = {"rgb8": "video-endoscopic", "mono8": "mf-grayscale-byte-sc", "mono16": "mf-grayscale-word-sc"}


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, naming the argument (argparse's message does), exit 2.
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def parse_size(text):
    try:
        w, h = text.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError("expected WIDTHxHEIGHT, e.g. 640x480, got %r" % text)
    if not (0 < w <= 0xFFFF and 0 < h <= 0xFFFF):
        raise argparse.ArgumentTypeError("width and height must be 1 to 65535, got %r" % text)
    return w, h


def parse_rate(text):
    try:
        if "/" in text:
            num, den = text.split("/")
            rate = (int(num), int(den))
        else:
            rate = (int(text), 1)
    except ValueError:
        raise argparse.ArgumentTypeError("expected frames per second as N or N/D, got %r" % text)
    if rate[0] <= 0 or rate[1] <= 0:
        raise argparse.ArgumentTypeError("frame rate must be positive, got %r" % text)
    return rate


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number, got %r" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %r" % text)
    return value


def dicom_text(vr):
    """An argparse type: a value the VR's rules accept (PS3.5 6.2)."""

    def check(text):
        try:
            encode_value(vr, text, UTF8)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err))
        return text

    return check


def local_now():
    """The wall clock as the encoder's (Y, M, D, h, m, s, us) tuple."""
    ns = time.time_ns()
    t = time.localtime(ns // 1000000000)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, (ns // 1000) % 1000000)


def patient_attributes(args):
    attributes = {}
    for tag, value in (
        (tags.PatientName, args.patient_name),
        (tags.PatientID, args.patient_id),
        (tags.AccessionNumber, args.accession),
    ):
        if value is not None:
            attributes[tag] = value
    return attributes


def capture_files(out_dir, iod, width, height, pixel, frames, rate, attributes, transfer_syntax):
    """Capture from the simulated board into out_dir: one multi-frame object,
    or one object per frame for a single-frame IOD. Yields (path, encoder)."""
    from firmware.capture import capture_object
    from hal.acq.sim import SimBoard

    board = SimBoard(width, height, pixel, rate)
    board.start()
    os.makedirs(out_dir, exist_ok=True)
    multiframe = IODS[iod].multiframe
    now = local_now()
    series = {}
    for index in range(1 if multiframe else frames):
        values = dict(attributes)
        values.update(series)
        values[tags.InstanceNumber] = index + 1
        tmp = os.path.join(out_dir, ".capture-%d.part" % os.getpid())
        with open(tmp, "wb") as out:
            encoder = capture_object(
                out, board, frames if multiframe else 1, iod, now, values, transfer_syntax=transfer_syntax
            )
        series = {tags.StudyInstanceUID: encoder.study_instance_uid, tags.SeriesInstanceUID: encoder.series_instance_uid}
        path = os.path.join(out_dir, encoder.sop_instance_uid + ".dcm")
        os.replace(tmp, path)
        yield path, encoder
    board.stop()


def cmd_capture(args):
    pixel = args.pixel
    iod = args.iod or DEFAULT_IOD[pixel or "rgb8"]
    if pixel is None:
        pixel = IODS[iod].pixel_formats[0]
    if pixel not in IODS[iod].pixel_formats:
        raise UsageError("argument --pixel: %s takes %s, not %s" % (iod, " or ".join(IODS[iod].pixel_formats), pixel))
    width, height = args.size
    for path, _ in capture_files(
        args.out, iod, width, height, pixel, args.frames, args.rate,
        patient_attributes(args), TRANSFER_SYNTAXES[args.transfer_syntax],
    ):
        print(path)
    return 0


def cmd_demo(args):
    """The whole path on embedded defaults: a clip of each IOD from the
    simulated board into a folder, and what was written."""
    width, height = 320, 240
    print("modgate %s demo: simulated board %dx%d, %d frames per clip, into %s"
          % (__version__, width, height, args.frames, args.out))
    total = 0
    for iod in sorted(IODS):
        pixel = IODS[iod].pixel_formats[0]
        for path, encoder in capture_files(
            args.out, iod, width, height, pixel, args.frames, (30, 1),
            {tags.PatientName: "Demo^Patient", tags.PatientID: "DEMO-0001"}, EXPLICIT_VR_LITTLE_ENDIAN,
        ):
            size = os.path.getsize(path)
            total += size
            print("  %-20s %-8s %3d frame(s) %9d bytes  %s" % (iod, pixel, encoder.frame_count, size, path))
    print("wrote %d bytes" % total)
    return 0


def build_parser():
    parser = Parser(prog="modgate", description="modgate: a modality gateway (capture, DICOM store, PS3.22 streaming)")
    parser.add_argument("--version", action="version", version="modgate " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("capture", help="capture frames from the simulated board into one DICOM file")
    p.add_argument("--frames", type=positive_int, required=True, help="number of frames")
    p.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH", help="frame size (default 640x480)")
    p.add_argument("--pixel", choices=sorted(PIXEL_FORMATS), help="pixel format (default: the IOD's)")
    p.add_argument("--iod", choices=sorted(IODS), help="IOD (default: by pixel format; rgb8: video-endoscopic)")
    p.add_argument("--rate", type=parse_rate, default=(30, 1), metavar="FPS", help="frame rate, N or N/D (default 30)")
    p.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES), default="explicit")
    p.add_argument("--patient-name", type=dicom_text("PN"), help="Patient's Name, components separated by ^")
    p.add_argument("--patient-id", type=dicom_text("LO"), help="Patient ID")
    p.add_argument("--accession", type=dicom_text("SH"), help="Accession Number")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("demo", help="run the gateway path on embedded defaults")
    p.add_argument("--frames", type=positive_int, default=10, help="frames per clip (default 10)")
    p.add_argument("--out", default="modgate-demo", metavar="DIR", help="folder to write into (default modgate-demo)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        parser.exit(2, "modgate %s: error: %s\n" % (args.command, err))
    except ValueError as err:
        # Values the DICOM rules refuse (e.g. a patient name too long).
        parser.exit(2, "modgate %s: error: %s\n" % (args.command, err))


if __name__ == "__main__":
    sys.exit(main())
