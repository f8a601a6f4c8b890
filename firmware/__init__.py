"""modgate firmware: the application and its sans-I/O protocol cores.

Everything under this package imports on CPython and on MicroPython (see
../shared/DESIGN.md, 'Rules that hold everywhere'), except main.py, the
Linux box's entry. (compat/threads.py needs a MicroPython port with
_thread; the WebAssembly port the tests use has none, so that path is
untested there.)
"""

__version__ = "0.1.0"
