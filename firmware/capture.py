"""Capture: frames from an acquisition board through the streaming encoder
into an output stream. The I/O side of the encoder: the caller opens the
output (a spool file, a BytesIO, a pipe) and this writes to it."""

from firmware.dicom.encoder import ObjectEncoder


def compressed(frames, codec):
    """The codec's units for frames (hal/codec: one picture each), as they
    come out, then what it held at the end."""
    for frame in frames:
        for unit in codec.encode(frame):
            yield unit
    for unit in codec.flush():
        yield unit


def write_frames(out, encoder, frames, codec=None):
    """Write one object: header, each frame as it comes (through codec
    when the object is compressed), trailer, then the patches (which need
    out to be seekable unless the frame count was declared). Returns the
    number of bytes written."""
    if codec is not None:
        frames = compressed(frames, codec)
    written = out.write(encoder.header()) or 0
    for frame in frames:
        for buf in encoder.frame(frame):
            written += out.write(buf) or 0
    trailer, patches = encoder.close()
    if trailer:
        written += out.write(trailer) or 0
    if patches:
        end = out.tell()
        for offset, data in patches:
            out.seek(offset)
            out.write(data)
        out.seek(end)
    return written


def board_frames(board, count):
    """The data of the next count frames from a started board."""
    for _ in range(count):
        yield board.read().data


def capture_object(out, board, count, iod, now, attributes=None, declare=False, codec=None, **options):
    """Encode count frames from a started board as one object into out.
    declare=True writes the frame count up front (no seeking needed).
    codec: the encoder for a compressed transfer_syntax (hal/codec).
    Returns the encoder, which knows the UIDs of what it wrote."""
    encoder = ObjectEncoder(
        iod,
        board.height,
        board.width,
        board.pixel,
        now,
        attributes,
        frames=count if declare else None,
        frame_rate=board.rate,
        **options
    )
    write_frames(out, encoder, board_frames(board, count), codec)
    return encoder
