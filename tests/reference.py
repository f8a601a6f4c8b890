"""The simulated board's pattern, written the obvious way: one pixel at a
time, straight from the formulas in hal/acq/sim.py. Slow, small frames only;
used to check the fast generator and every decoded pixel bit-exactly. Runs on
CPython and MicroPython."""


def pixel_rgb8(x, y, k):
    return ((x + k) % 256, (y + k) % 256, (x + y + k) % 256)


def pixel_mono8(x, y, k):
    return (x + y + k) % 256


def pixel_mono16(x, y, k):
    return (3 * x + 5 * y + 7 * k) % 4096


def frame(pixel, width, height, k):
    out = bytearray()
    for y in range(height):
        for x in range(width):
            if pixel == "rgb8":
                out.extend(bytes(pixel_rgb8(x, y, k)))
            elif pixel == "mono8":
                out.append(pixel_mono8(x, y, k))
            elif pixel == "mono16":
                v = pixel_mono16(x, y, k)
                out.append(v & 255)
                out.append(v >> 8)
            elif pixel == "ycbcr422":
                # Cb Y0 Cr Y1 per pixel pair.
                if x % 2 == 0:
                    out.append((x // 2 + k) % 256)
                else:
                    out.append((y + 2 * k) % 256)
                out.append((x + y + k) % 256)
            else:
                raise ValueError(pixel)
    return bytes(out)
