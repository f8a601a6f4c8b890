"""The ``modgate`` command line (the host's; CPython only).

Each subcommand is a function taking the parsed arguments and returning an
exit status. Bad arguments print one line naming the argument and exit 2.
`run` is the box's own entry (firmware/main.py), which the box's init starts
directly; every other subcommand is host-side and never goes into the box.
"""

import argparse
import os
import sys
import time

from firmware import __version__
from firmware.dicom import tags
from firmware.dicom.encoder import check_video
from firmware.dicom.iod import IODS, PIXEL_FORMATS, TRANSFER_SYNTAXES, check_transfer_syntax, transfer_syntax_of
from firmware.dicom.uid import VIDEO_BITSTREAMS
from firmware.dicom.vr import UTF8, encode_value
from firmware.main import add_arguments as add_run_arguments, log_line, run as cmd_run
from tools import console_client, image, qemu

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
    """The patient attributes the arguments give, by the box's own factory
    under the configuration's keys (capture has --accession, stream not)."""
    from firmware.study import patient_attributes as attributes_of

    return attributes_of({"patient.name": args.patient_name, "patient.id": args.patient_id,
                          "study.accession_number": getattr(args, "accession", None)})


def capture_files(out_dir, iod, width, height, pixel, frames, rate, attributes, transfer_syntax=None,
                  bitrate=None, gop=None, quality=90):
    """Capture from the simulated board into out_dir: one multi-frame object,
    or one object per frame for a single-frame IOD, in the transfer syntax
    named transfer_syntax (firmware/dicom/iod.TRANSFER_SYNTAXES; compressed
    through the host board's codecs). Yields (path, encoder)."""
    import board as boards
    from firmware.capture import capture_object
    from firmware.recorder import open_codec
    from firmware.study import equipment_attributes
    from hal.acq.sim import SimBoard

    host = boards.load("host")
    settings = {"clip.transfer_syntax": transfer_syntax, "clip.iod": iod, "clip.bitrate": bitrate, "clip.gop": gop,
                "clip.jpeg_quality": quality}
    board = SimBoard(width, height, pixel, rate)
    board.start()
    os.makedirs(out_dir, exist_ok=True)
    multiframe = IODS[iod].multiframe
    now = local_now()
    series = {}
    for index in range(1 if multiframe else frames):
        values = equipment_attributes(host)  # the box that made them: the host
        values.update(attributes)
        values.update(series)
        values[tags.InstanceNumber] = index + 1
        tmp = os.path.join(out_dir, ".capture-%d.part" % os.getpid())
        uid, codec = open_codec(host, settings, board)
        try:
            with open(tmp, "wb") as out:
                encoder = capture_object(
                    out, board, frames if multiframe else 1, iod, now, values, transfer_syntax=uid, codec=codec
                )
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)  # our own partial file, never a finished one
            raise
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
    import board

    check_frame_size(board.load("host"), pixel, width, height)
    try:
        args.transfer_syntax = transfer_syntax_of(args.transfer_syntax, iod)
        check_transfer_syntax(args.transfer_syntax, iod, pixel)
        uid = TRANSFER_SYNTAXES[args.transfer_syntax][0]
        if uid in VIDEO_BITSTREAMS:
            check_video(uid, width, height, args.rate)
    except ValueError as err:
        raise UsageError("argument --transfer-syntax: %s" % err)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        raise UsageError("argument --out: cannot make %s: %s" % (args.out, err.strerror or err))
    try:
        for path, _ in capture_files(
            args.out, iod, width, height, pixel, args.frames, args.rate,
            patient_attributes(args), args.transfer_syntax, args.bitrate and args.bitrate * 1.0, args.gop,
        ):
            print(path, flush=True)
    except BrokenPipeError:
        # The reader of our output went away (| head -1): nothing to say to
        # it. Python would complain again at exit flushing stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:
        # Not an argument's fault (a full disk, say): one line, status 1.
        sys.stderr.write("modgate capture: cannot write into %s: %s\n" % (args.out, err))
        return 1
    return 0


def cmd_demo(args):
    """The whole gateway path on embedded defaults, nothing to configure: the
    host board's simulated acquisition, the spool, the Storage SCU, and a
    local PACS (tools/receiver.py) on a free loopback port that serves a
    Modality Worklist, stores and commits; then a check of every clip that
    arrived against the board's pattern and the selected procedure."""
    import shutil
    import socket
    import threading

    import board
    from firmware import config
    from firmware.console.system import ConsoleSystem
    from firmware.gateway import Gateway
    from firmware.services import worklist
    from hal.acq.sim import Pattern
    from tools.receiver import Receiver, check_clip, check_h264_clip

    received_dir = os.path.join(args.out, "received")
    spool_dir = os.path.join(args.out, "spool")
    for folder in (received_dir, spool_dir):  # the demo's own folders, fresh each run
        shutil.rmtree(folder, ignore_errors=True)
    with socket.socket() as probe:  # a free port for the box's listener
        probe.bind(("127.0.0.1", 0))
        listen_port = probe.getsockname()[1]
    station = config.defaults()["station.ae_title"]
    receiver = Receiver(received_dir, box=(station, "127.0.0.1", listen_port)).start()
    cfg = config.defaults()
    host = board.load("host")
    codec_note = ""
    try:
        host.open_codec("h264", 320, 240, "rgb8", (30, 1)).close()
        transfer_syntax = "h264"
    except Exception as err:  # CodecError: the libraries are not on this machine
        transfer_syntax = "explicit"
        codec_note = " (no H.264 encoder here: %s; recording uncompressed)" % err
    cfg.update({
        "board": "host",
        "clip.transfer_syntax": transfer_syntax,
        "acquisition.width": 320, "acquisition.height": 240, "acquisition.pixel": "rgb8",
        "acquisition.rate": [30, 1], "acquisition.paced": False,
        "clip.mode": "frames", "clip.frames": args.frames, "clip.count": args.clips,
        "pacs.host": "127.0.0.1", "pacs.port": receiver.port, "pacs.ae_title": receiver.ae_title,
        "pacs.commit": True, "pacs.commit_port": listen_port, "pacs.commit_timeout": 30.0,
        "worklist.host": "127.0.0.1", "worklist.port": receiver.port, "worklist.ae_title": receiver.ae_title,
        "worklist.refresh": 0,
        "mpps.host": "127.0.0.1", "mpps.port": receiver.port, "mpps.ae_title": receiver.ae_title,
        "spool.root": spool_dir, "spool.max_bytes": 256 * 1024 * 1024, "spool.min_free_bytes": 0,
    })
    config.validate(cfg)
    print("modgate %s demo: host board (simulated, 320x240 rgb8), %d clips of %d frames as %s%s -> spool %s -> "
          "PACS %s on 127.0.0.1:%d (worklist, MPPS, storage, storage commitment) -> %s" % (
              __version__, args.clips, args.frames, transfer_syntax, codec_note, spool_dir, receiver.ae_title,
              receiver.port, received_dir))
    gateway = Gateway(cfg, host, log=log_line if args.verbose else None)
    system = ConsoleSystem(gateway)
    runner = threading.Thread(target=gateway.run, name="gateway")
    try:
        # What the technician types: worklist refresh, worklist select 1,
        # then (the clips recorded, stored and committed) procedure end.
        problem = gateway.schedule.refresh()
        item = gateway.schedule.item(1)
        if problem or item is None:
            print("worklist: %s" % (problem or "no item for %s" % station))
            return 1
        print("worklist: %s" % worklist.line(1, item))
        values = system.procedure_begin("1", cfg)
        if isinstance(values, str):
            print(values)
            return 1
        gateway.apply(dict(cfg, **values))
        runner.start()
        deadline = time.monotonic() + 300
        while not (gateway.recorder.done and not gateway.waiting()) and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = system.procedure_end("COMPLETED", None)
        while gateway.procedure.queued()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gateway.stop()
        if runner.is_alive():
            runner.join(60)
        receiver.stop()
    pattern = Pattern("rgb8", 320, 240)
    arrived = receiver.files()
    good = 0
    for clip in gateway.clips:
        path = arrived.get(clip.sop_instance_uid)
        if path is None:
            problems, verdict = ["did not arrive"], ""
        elif transfer_syntax == "h264":
            problems, psnr = check_h264_clip(path, clip, pattern)
            verdict = "received, H.264 decoded within %.1f dB of the pattern" % psnr if psnr is not None else \
                "received, H.264 (not decoded: no ffmpeg on this machine)"
        else:
            problems, verdict = check_clip(path, clip, pattern), "received, pixels bit-exact"
        if path is not None:
            problems += _procedure_problems(path, item)
        good += not problems
        print("  clip %d  %s  %d frames  %s" % (clip.instance_number, clip.sop_instance_uid, clip.frames,
                                               "; ".join(problems) or verdict + ", the procedure's"))
    committed = len(set(receiver.committed) & set(c.sop_instance_uid for c in gateway.clips))
    print("procedure: %s, ID %s, accession %s, study %s; %s" % (
        item["PatientName"], item["PatientID"], item["AccessionNumber"], item["StudyInstanceUID"], ended))
    mpps_status = receiver.mpps.get(values["study.performed_step_uid"], "never created")
    reported = sorted(receiver.mpps_instances.get(values["study.performed_step_uid"], []))
    print("MPPS %s: %s, %d instances in its Performed Series Sequence" % (
        values["study.performed_step_uid"], mpps_status, len(reported)))
    print("%d clips recorded, %d received, %d verified, %d committed; spool: %d waiting, %d awaiting commitment, "
          "%d quarantined" % (len(gateway.clips), sum(c.sop_instance_uid in arrived for c in gateway.clips), good,
                              committed, len(gateway.spool.pending()), len(gateway.spool.awaiting()),
                              len(gateway.spool.quarantined())))
    all_reported = reported == sorted(c.sop_instance_uid for c in gateway.clips)
    return 0 if good == committed == len(gateway.clips) == args.clips and mpps_status == "COMPLETED" and \
        all_reported else 1


def _procedure_problems(path, item):
    """What in a received clip is not the selected worklist item's."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    problems = []
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID"):
        if str(ds.get(keyword, "")) != item[keyword]:
            problems.append("%s %r, not the procedure's %r" % (keyword, str(ds.get(keyword, "")), item[keyword]))
    requests = ds.get("RequestAttributesSequence") or []
    if not requests or requests[0].get("ScheduledProcedureStepID") != item["ScheduledProcedureStepID"]:
        problems.append("no Request Attributes Sequence with the step %s" % item["ScheduledProcedureStepID"])
    if not ds.get("ReferencedPerformedProcedureStepSequence"):
        problems.append("no Referenced Performed Procedure Step Sequence")
    return problems


def host_port(text):
    """HOST:PORT, [V6]:PORT; the port 1..65535."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port)
    except ValueError:
        port = 0
    if not sep or not host or not 0 < port <= 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 239.1.1.1:5004, got %r" % text)
    return host, port


def multicast_ttl(text):
    """IPv4 TTL / IPv6 hop limit: one octet (RFC 791 3.1, RFC 8200 3)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError("a TTL is 0 to 255, got %r" % text)
    return value


def resolve(host, argument):
    """The numeric address a host name stands for (IPv4 first, as the SDP's
    c= line and most receivers expect); UsageError naming the argument."""
    import socket

    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as err:
        raise UsageError("argument %s: cannot resolve %r: %s" % (argument, host, getattr(err, "strerror", None) or err))
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return infos[0][4][0]


def check_frame_size(box, pixel, width, height, argument="--size"):
    """A frame must fit the board's share of memory for one frame
    (board.max_frame_bytes: a quarter of memory_budget_mib)."""
    from hal.acq import frame_length

    length = frame_length(pixel, width, height)
    if length > box.max_frame_bytes:
        raise UsageError("argument %s: a %dx%d %s frame is %.1f MiB; board %s allows %.1f MiB a frame "
                         "(a quarter of its %d MiB memory budget)" % (
                             argument, width, height, pixel, length / 1048576.0, box.name,
                             box.max_frame_bytes / 1048576.0, box.memory_budget_mib))


class Stopped(Exception):
    """A signal asked the stream to stop while it waited."""


class StoppableClock:
    """A hal clock whose sleeps end early, raising Stopped, once stopped()
    is true: the streamer sleeps until each frame's slot, which at a slow
    frame rate is minutes or hours away, and a signal must end it within
    STOP_SLICE_S."""

    def __init__(self, clock, stopped):
        self._clock = clock
        self._stopped = stopped

    def sleep_ns(self, ns):
        end = self._clock.monotonic_ns() + ns
        while True:
            if self._stopped():
                raise Stopped()
            left = end - self._clock.monotonic_ns()
            if left <= 0:
                return
            self._clock.sleep_ns(min(left, STOP_SLICE_NS))

    def __getattr__(self, name):
        return getattr(self._clock, name)


STOP_SLICE_NS = 100000000  # 0.1 s: how long a signal may wait to be seen
STOP_SLICE_S = STOP_SLICE_NS / 1e9


def cmd_stream(args):
    """PS3.22: the board's frames as a ST 2110-20 video flow and its DICOM
    metadata flow, paced (ST 2110-21 wide), until --frames or a signal.
    Every argument is checked before a datagram leaves: one line and exit
    status 2 for one that cannot work."""
    import signal

    import board
    from firmware.streaming import StreamError, open_stream
    from hal.storage import PosixStorage

    name = "host" if args.board == "sim" else args.board
    try:
        box = board.load(name)
    except ValueError as err:
        raise UsageError("argument --board: %s" % err)
    width, height = args.size
    check_frame_size(box, args.pixel, width, height)
    video_dest = (resolve(args.dest[0], "--dest"), args.dest[1])
    if args.meta_dest:
        meta_dest = (resolve(args.meta_dest[0], "--meta-dest"), args.meta_dest[1])
    elif video_dest[1] + 2 > 65535:
        # PS3.22 gives the metadata its own flow; modgate's default is the
        # video's port + 2 (RTP/RTCP pairs, RFC 3550 11).
        raise UsageError("argument --dest: the metadata flow would go to port %d + 2 = %d, past 65535; "
                         "give --meta-dest or a lower port" % (video_dest[1], video_dest[1] + 2))
    else:
        meta_dest = (video_dest[0], video_dest[1] + 2)
    if meta_dest == video_dest:
        raise UsageError("argument --meta-dest: %s:%d is the video flow's destination too" % meta_dest)
    try:
        os.makedirs(args.sdp_dir, exist_ok=True)
    except OSError as err:
        raise UsageError("argument --sdp-dir: cannot make %s: %s" % (args.sdp_dir, err.strerror or err))
    clock = box.open_clock()
    acq = box.open_acquisition(width=width, height=height, pixel=args.pixel, rate=args.rate,
                               clock=clock, paced=False)
    try:
        acq.start()
    except OSError as err:
        raise UsageError("argument --board: board %s cannot acquire: %s" % (box.name, err))
    streamer = None
    try:
        stop = []
        try:
            streamer, _ = open_stream(box, acq, StoppableClock(clock, lambda: bool(stop)), video_dest, meta_dest,
                                      args.ttl, PosixStorage(args.sdp_dir), iod=args.iod,
                                      attributes=patient_attributes(args), burst=args.burst)
        except StreamError as err:
            cause = err.cause
            if err.part == "sdp":
                raise UsageError("argument --sdp-dir: cannot write the SDP files into %s: %s" % (
                    args.sdp_dir, cause.strerror or cause))
            argument, dest = ("--dest", video_dest) if err.part == "video" else (
                "--meta-dest" if args.meta_dest else "--dest", meta_dest)
            if isinstance(cause, OverflowError):
                raise UsageError("argument %s: %s" % (argument, cause))
            raise UsageError("argument %s: cannot send to %s port %d: %s" % (
                argument, dest[0], dest[1], cause.strerror or cause))
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        plan = streamer.schedule
        log_line("streaming %dx%d %s at %s fps to %s:%d (metadata %s:%d); SDPs in %s; %d datagrams a frame, "
                 "bursts of %d (C_MAX %d, VRX_FULL %d), TR_OFFSET %d us, first datagram %d us before TPR_0"
                 % (acq.width, acq.height, acq.pixel, "%d/%d" % acq.rate, video_dest[0], video_dest[1],
                    meta_dest[0], meta_dest[1], args.sdp_dir, plan.npackets, plan.burst, plan.cmax,
                    plan.vrx_full, plan.troffset // 1000, plan.lead // 1000))
        # One thread: the media clock's frame grid paces the flow (the board
        # is read unpaced). The next frame is read right after the last
        # one's final burst, in the time the frame's plan leaves before the
        # next slot (the gapped spacing's 4% of a period, plus the lead);
        # a frame not ready by its slot's TPR_0 goes in the next one, and
        # the slot is counted as missed. (A second thread for the board
        # would cost more: each burst would wait for the interpreter lock
        # while it draws.) Reads and sleeps wait in slices of STOP_SLICE_S,
        # so a signal ends the stream whatever the frame rate (hal.acq).
        refused = clock.realtime_thread()
        if refused:
            log_line("sending at normal priority: %s" % refused)
        started = time.monotonic()
        failure = None
        sent = 0  # frames whose every datagram left (a stop may cut the last one short)
        try:
            while not stop and (args.frames is None or sent < args.frames):
                frame = acq.read(STOP_SLICE_S)
                if frame is not None:
                    streamer.send(frame.data)
                    sent += 1
        except Stopped:
            pass
        except OSError as err:
            failure = "board %s: %s" % (box.name, err)
    finally:
        acq.stop()
        if streamer is not None:
            streamer.close()
    s = streamer.stats()
    log_line("streamed %d frames in %.1f s: %d late, %d frame slots missed, %d video and %d metadata datagrams, "
             "%d dropped" % (sent, time.monotonic() - started, s["late"], s["slots_missed"], s["video_packets"],
                             s["meta_packets"], s["dropped_packets"]))
    if failure:
        log_line("stopped: %s" % failure)
        return 1
    return 0


def ae_title(text):
    """PS3.5 6.2 AE: 1 to 16 characters, not all spaces (they are padding)."""
    try:
        encode_value("AE", text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))
    if not text.strip():
        raise argparse.ArgumentTypeError("an AE title is 1 to 16 characters, not all spaces: %r" % text)
    return text


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    # "not 0 < value" also refuses NaN; a day bounds what a socket takes.
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("seconds from 0 (excluded) to 86400, got %r" % text)
    return value


def port_number(text):
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError("a TCP port is 1 to 65535, got %r" % text)
    return port


def host_board():
    """The board a host command's network I/O goes through (hal.tcp)."""
    import board

    return board.load("host")


def scu_options(args):
    from firmware.association import Timeouts

    resolve(args.host, "host")
    options = {
        "called_ae_title": args.aec,
        "calling_ae_title": args.aet,
        "timeouts": Timeouts(args.connect_timeout, args.acse_timeout, args.dimse_timeout, args.network_timeout),
    }
    if getattr(args, "maximum_length", None):
        options["maximum_length"] = args.maximum_length
    files = (("--ca", args.ca), ("--cert", args.cert), ("--key", args.key))
    if not args.tls:
        for argument, given in files + (("--no-verify", args.no_verify),):
            if given:
                raise UsageError("argument %s: only with --tls" % argument)
        return options
    if args.key and not args.cert:
        raise UsageError("argument --key: only with --cert")
    for argument, path in files:
        if path:
            try:
                open(path, "rb").close()
            except OSError as err:
                raise UsageError("argument %s: cannot read %s: %s" % (argument, path, err.strerror or err))
    try:
        options["tls"] = host_board().open_tls(args.ca, args.cert, args.key, verify=not args.no_verify)
    except (OSError, ValueError) as err:
        raise UsageError("argument --tls: %s" % err)
    return options


def count_of(what, low, high):
    def check(text):
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("%s is %d to %d, not %r" % (what, low, high, text))
        return value

    return check


def worklist_date(text):
    """--date: today, YYYYMMDD or a range YYYYMMDD-YYYYMMDD (PS3.4
    C.2.2.2.5; either side may be left open)."""
    if text == "today":
        t = time.localtime()  # a schedule is kept in the hospital's local time
        return "%04d%02d%02d" % (t[0], t[1], t[2])
    from firmware.services.worklist import Query

    try:
        Query(date=text)
    except ValueError as err:
        raise argparse.ArgumentTypeError("a date is today, YYYYMMDD or YYYYMMDD-YYYYMMDD: %s" % err)
    return text


def _report_listener(args, options, board, reports, log):
    """firmware/listener.py on --commit-port in a thread, taking reports
    only from the peer (--aec at HOST) to us (--aet): (thread, stop event).
    With --tls it speaks TLS with --cert/--key and asks the peer for a
    certificate from --ca."""
    import threading

    from firmware.dicom.uid import STORAGE_COMMITMENT_PUSH_MODEL
    from firmware.listener import Listener
    from firmware.services import commitment

    tls = None
    if args.tls:
        if not args.cert:
            raise UsageError("argument --commit-port: with --tls the listener needs --cert and --key")
        tls = board.open_server_tls(args.ca, args.cert, args.key, verify=not args.no_verify)

    def take(association, context_id, command, data_set):
        report = commitment.take_report(association, context_id, command, data_set, log or (lambda text: None))
        if report is not None:
            reports.append(report)

    try:
        listener = Listener(board, args.commit_port, args.aet, args.aec, args.host, [STORAGE_COMMITMENT_PUSH_MODEL],
                            take, log=log, tls=tls, timeouts=options["timeouts"]).open()
    except OSError as err:
        raise UsageError("argument --commit-port: cannot listen on %d: %s" % (args.commit_port, err.strerror or err))
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop.is_set,), name="listener", daemon=True)
    thread.start()
    return thread, stop


def cmd_worklist(args):
    """C-FIND on the Modality Worklist (PS3.4 K): one line per item, like
    DCMTK's findscu -W, or one JSON object per line keyed by keyword."""
    import json

    from firmware.association import Association, AssociationError
    from firmware.net import acse
    from firmware.services import worklist

    options = scu_options(args)
    query = worklist.Query(args.station_aet or args.aet, args.modality, args.date, args.patient_id, args.accession)
    association = Association(host_board(), args.host, args.port, options["called_ae_title"],
                              options["calling_ae_title"], timeouts=options["timeouts"], tls=options.get("tls"),
                              log=log_line if args.verbose else None)
    try:
        association.open(acse.propose(worklist.CONTEXTS))
        items, status, meaning, complete = worklist.find(association, query, args.max_matches)
    except (AssociationError, ValueError) as err:
        association.abort()
        print("worklist %s:%d failed: %s" % (args.host, args.port, err))
        return 1
    association.release()
    for item in items:
        if args.json:
            print(json.dumps(item, ensure_ascii=False, sort_keys=True))
        else:
            print("  ".join(item.get(k, "") or "-" for k in (
                "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime", "PatientName", "PatientID",
                "AccessionNumber", "ScheduledProcedureStepDescription")))
    if not complete:
        print("worklist: more than %d matches; the first %d are shown (--max-matches)" % (
            args.max_matches, len(items)), file=sys.stderr)
    if status not in (0x0000, 0xFE00) or (status == 0xFE00 and complete):
        print("worklist %s:%d: %04X %s" % (args.host, args.port, status, meaning))
        return 1
    return 0


def cmd_echo(args):
    from firmware.association import AssociationError
    from firmware.services.storage import StorageSCU

    scu = StorageSCU(host_board(), args.host, args.port, log=log_line if args.verbose else None, **scu_options(args))
    try:
        scu.associate([])
        status, category, meaning = scu.echo()
    except AssociationError as err:
        print("echo %s:%d failed: %s" % (args.host, args.port, err))
        return 1
    scu.release()
    print("echo %s:%d %s (%04X %s)" % (args.host, args.port, category, status, meaning))
    return 0 if category == "success" else 1


def collect_paths(paths):
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(folder, name)
        else:
            yield path


class Progress:
    """A progress line on a terminal for objects over a few MB."""

    def __init__(self, stream):
        self.stream = stream
        self.started = None
        self.shown = False

    def __call__(self, sent, total):
        if total < 4 * 1000 * 1000:
            return
        now = time.monotonic()
        if self.started is None:
            self.started = now
        elapsed = max(now - self.started, 1e-6)
        if sent == total or int(elapsed * 4) != int((elapsed - 0.001) * 4):
            self.stream.write("\r  %d / %d bytes, %.1f MB/s " % (sent, total, sent / elapsed / 1e6))
            self.stream.flush()
            self.shown = True

    def done(self):
        if self.shown:
            self.stream.write("\n")
            self.shown = False
        self.started = None


def cmd_store(args):
    from firmware.services.storage import store_files
    from hal.storage import open_file

    options = scu_options(args)
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    if progress:
        options["progress"] = progress
    failures = count = 0
    stored = []
    for result in store_files(host_board(), collect_paths(args.paths), args.host, args.port, open_file,
                              log=log_line if args.verbose else None, **options):
        if progress:
            progress.done()
        count += 1
        if not result.stored:
            failures += 1
        else:
            stored.append((result.sop_class_uid, result.sop_instance_uid))
        note = " (sent as Implicit VR Little Endian)" if result.converted else ""
        print("%s%s" % (result, note))
    if count == 0:
        print("no files to send")
        return 1
    if args.commit:
        options.pop("progress", None)
        if not commit_stored(args, options, stored):
            return 1
    return 1 if failures else 0


def commit_stored(args, options, references):
    """Storage commitment (PS3.4 J.3) for what was stored: N-ACTION on a new
    association, then the reports, on that association or on a new one the
    peer opens to --commit-port, until --commit-timeout. Prints the tally;
    True when every object was committed."""
    from firmware.association import Association, AssociationError
    from firmware.dicom.uid import generate_uid
    from firmware.net import acse
    from firmware.services import commitment

    if not references:
        print("storage commitment: 0 of 0 committed (nothing was stored)")
        return False
    board = host_board()
    log = log_line if args.verbose else None
    reports = []
    listener = stop = None
    if args.commit_port is not None:
        listener, stop = _report_listener(args, options, board, reports, log)
    transactions = {}
    assoc = Association(board, args.host, args.port, args.aec, args.aet, log=log,
                        **{k: v for k, v in options.items() if k in ("maximum_length", "timeouts", "tls")})
    assoc.max_data_set = commitment.MAX_REPORT
    deadline = time.monotonic() + args.commit_timeout
    try:
        assoc.open(acse.propose(commitment.CONTEXTS))
        for start in range(0, len(references), commitment.MAX_REFERENCES):
            batch = references[start: start + commitment.MAX_REFERENCES]
            uid = generate_uid(None)
            status, meaning = commitment.request(assoc, uid, batch)
            if status != 0x0000:
                print("storage commitment: the peer refused the request: N-ACTION %04X %s" % (status, meaning))
                return False
            transactions[uid] = batch
        while time.monotonic() < deadline and len(set(r.transaction_uid for r in reports) & set(transactions)) < len(
                transactions):
            incoming = assoc.poll(min(0.2, max(0.0, deadline - time.monotonic()))) if assoc.usable else None
            if incoming is None:
                if not assoc.usable:
                    time.sleep(0.1)  # the report can only come on the listener now
                continue
            context_id, command, data_set = incoming
            report = commitment.take_report(assoc, context_id, command, data_set, log or (lambda text: None))
            if report is not None:
                reports.append(report)
        assoc.release()
    except AssociationError as err:
        assoc.abort()
        print("storage commitment: %s" % err)
        return False
    finally:
        if listener is not None:
            stop.set()
            listener.join(10)
    committed, failed = set(), {}
    for report in list(reports):
        if report.transaction_uid not in transactions:
            continue
        committed.update(i for _, i in report.committed)
        for _, instance, reason in report.failed:
            failed[instance] = reason
    asked = [i for batch in transactions.values() for _, i in batch]
    done = [i for i in asked if i in committed and i not in failed]
    print("storage commitment: %d of %d committed" % (len(done), len(asked)))
    for instance in asked:
        if instance in failed:
            print("  %s not committed: %s" % (instance, commitment.failure_text(failed[instance])))
        elif instance not in committed:
            print("  %s not committed: no report within %.0f s" % (instance, args.commit_timeout))
    return len(done) == len(asked)


def add_network_arguments(p):
    p.add_argument("--aet", type=ae_title, default="MODGATE", help="calling AE title (default MODGATE)")
    p.add_argument("--aec", type=ae_title, default="ANY-SCP", help="called AE title (default ANY-SCP)")
    p.add_argument("--connect-timeout", type=seconds, default=10.0, metavar="S")
    p.add_argument("--acse-timeout", type=seconds, default=30.0, metavar="S")
    p.add_argument("--dimse-timeout", type=seconds, default=60.0, metavar="S")
    p.add_argument("--network-timeout", type=seconds, default=60.0, metavar="S")
    p.add_argument("--tls", action="store_true", help="DICOM TLS (PS3.15), TLS 1.2 or newer")
    p.add_argument("--ca", metavar="FILE", help="CA certificates to verify the peer with")
    p.add_argument("--cert", metavar="FILE", help="our certificate (for client authentication)")
    p.add_argument("--key", metavar="FILE", help="our private key")
    p.add_argument("--no-verify", action="store_true", help="do not verify the peer's certificate")
    p.add_argument("-v", "--verbose", action="store_true", help="log association events to stderr")
    p.add_argument("host", help="the peer's host name or address")
    p.add_argument("port", type=port_number, help="the peer's TCP port")


def maximum_length(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    # PS3.8 D.1: at least room for a PDV; modgate caps at 4 MiB.
    if not 4096 <= value <= 4 * 1024 * 1024:
        raise argparse.ArgumentTypeError("maximum length must be 4096 to 4194304, got %r" % text)
    return value


def cmd_conformance(args):
    """The DICOM Conformance Statement (PS3.2), generated host-side by
    tools/conformance.py from the firmware's tables."""
    from tools.conformance import update_readme, write

    if args.readme:
        try:
            return update_readme(args.readme)
        except OSError as err:
            raise UsageError("argument --readme: %s: %s" % (args.readme, err.strerror or err))
    try:
        return write(args.format, args.out)
    except OSError as err:
        raise UsageError("argument --out: cannot write %s: %s" % (args.out, err.strerror or err))


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
    p.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES),
                   help="h264 (MPEG-4 AVC/H.264 HP@L4.1), h264-bd, h264-hp42 (video IODs), jpeg-baseline (8-bit), "
                        "explicit or implicit (uncompressed); default: the IOD's (h264 for video, jpeg-baseline "
                        "for colour stills and true colour SC, explicit for grayscale SC)")
    p.add_argument("--bitrate", type=float, metavar="MBIT", help="H.264 average bit rate in Mbit/s (default: "
                                                                "constant quality, capped at 40 Mbit/s)")
    p.add_argument("--gop", type=positive_int, metavar="N", help="H.264 frames between IDR pictures (default 2 s)")
    p.add_argument("--patient-name", type=dicom_text("PN"), help="Patient's Name, components separated by ^")
    p.add_argument("--patient-id", type=dicom_text("LO"), help="Patient ID")
    p.add_argument("--accession", type=dicom_text("SH"), help="Accession Number")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("demo", help="run the whole gateway on embedded defaults, into a local Storage SCP")
    p.add_argument("--clips", type=positive_int, default=3, help="clips to record (default 3)")
    p.add_argument("--frames", type=positive_int, default=10, help="frames per clip (default 10)")
    p.add_argument("--out", default="modgate-demo", metavar="DIR", help="folder for the spool and what arrives (default modgate-demo)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the gateway does to stderr")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run the gateway until stopped (the box's entry, firmware/main.py)")
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("console", help="the box's serial console from this host (pyserial), interactive or scripted",
                       description="The box's serial console from this host: interactive (Ctrl-] quits) "
                                   "or scripted with --run.")
    console_client.add_arguments(p)
    p.set_defaults(func=console_client.run)

    p = sub.add_parser("stream", help="stream the board's frames per PS3.22 (ST 2110-20 video + DICOM metadata)")
    p.add_argument("--board", default="sim", help="board (default sim: the host board's simulated acquisition)")
    p.add_argument("--size", type=parse_size, default=(1920, 1080), metavar="WxH", help="frame size (default 1920x1080)")
    p.add_argument("--rate", type=parse_rate, default=(30, 1), metavar="FPS", help="frame rate, N or N/D (default 30)")
    p.add_argument("--pixel", choices=("ycbcr422", "ycbcr422-10", "rgb8"), default="ycbcr422",
                   help="pixel format (default ycbcr422: 8-bit 4:2:2)")
    p.add_argument("--frames", type=positive_int, help="frames to send (default: until stopped)")
    p.add_argument("--dest", type=host_port, required=True, metavar="HOST:PORT", help="video flow destination")
    p.add_argument("--meta-dest", type=host_port, metavar="HOST:PORT",
                   help="metadata flow destination (default: the video's host, port + 2)")
    p.add_argument("--ttl", type=multicast_ttl, default=1, help="multicast TTL, 0 to 255 (default 1)")
    p.add_argument("--iod", choices=("video-endoscopic", "video-photographic"), default="video-endoscopic")
    p.add_argument("--burst", type=positive_int, help="datagrams per burst (default C_MAX / 2)")
    p.add_argument("--patient-name", type=dicom_text("PN"), help="Patient's Name in the metadata")
    p.add_argument("--patient-id", type=dicom_text("LO"), help="Patient ID in the metadata")
    p.add_argument("--sdp-dir", required=True, metavar="DIR", help="where video.sdp and metadata.sdp are written")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("echo", help="C-ECHO: check that a DICOM peer answers (like DCMTK echoscu)")
    add_network_arguments(p)
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("worklist", help="C-FIND on a Modality Worklist (like DCMTK findscu -W)")
    add_network_arguments(p)
    p.add_argument("--modality", type=dicom_text("CS"), help="Modality of the scheduled step (e.g. ES); default any")
    p.add_argument("--date", type=worklist_date, default="today", metavar="DATE",
                   help="Scheduled Procedure Step Start Date: today (default), YYYYMMDD or YYYYMMDD-YYYYMMDD")
    p.add_argument("--station-aet", type=ae_title, metavar="S",
                   help="Scheduled Station AE Title (default: --aet, ours)")
    p.add_argument("--patient-id", type=dicom_text("LO"), metavar="ID")
    p.add_argument("--accession", type=dicom_text("SH"), metavar="N", help="Accession Number")
    p.add_argument("--max-matches", type=count_of("--max-matches", 1, 100000), default=1000, metavar="N",
                   help="keep at most N matches, then cancel the query (default 1000)")
    p.add_argument("--json", action="store_true", help="one JSON object per item, keyed by DICOM keyword")
    p.set_defaults(func=cmd_worklist)

    p = sub.add_parser("store", help="C-STORE files or folders to a DICOM peer (like DCMTK storescu)")
    add_network_arguments(p)
    # --max-pdu: the spelling before PS3.8 D.1's name; scripts still use it.
    p.add_argument("--maximum-length", "--max-pdu", type=maximum_length, default=65536, metavar="N",
                   help="Maximum Length (PS3.8 D.1): the largest P-DATA-TF we receive, and the most we send "
                        "(default 65536)")
    p.add_argument("--commit", action="store_true",
                   help="then request Storage Commitment (PS3.4 J) for what was stored and wait for the report; "
                        "exit 0 only if every object was committed")
    p.add_argument("--commit-timeout", type=seconds, default=60.0, metavar="S",
                   help="how long to wait for the commitment report (default 60)")
    p.add_argument("--commit-port", type=port_number, metavar="P",
                   help="also listen on P for the report on a new association from the peer (its AE title --aec, "
                        "its address HOST); without it the report must come on the request's association")
    p.add_argument("paths", nargs="+", metavar="PATH", help="Part 10 files or folders of them")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("conformance", help="write the DICOM Conformance Statement, generated from the code's tables")
    p.add_argument("--format", choices=("md", "html"), default="md", help="Markdown (default) or HTML")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    p.add_argument("--readme", metavar="FILE", help="instead: rewrite the configuration key table in FILE (README.md)")
    p.set_defaults(func=cmd_conformance)

    # The emulated box: its image builder and its QEMU runner.
    image.add_arguments(sub)
    qemu.add_arguments(sub)
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
