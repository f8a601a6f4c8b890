"""Threads and events for the gateway: CPython's threading, or on
MicroPython (which has only _thread) the small part of it modgate uses:

    Thread(target, args=(), name=None, daemon=False): start(), join(timeout)
    Event(): set(), clear(), is_set(), wait(timeout) -> bool
    Lock(): a context manager (with lock: ...)

The _thread path below is untested: the MicroPython the tests run (the
WebAssembly port, tests/test_micropython.py) has no _thread, so there this
module does not import at all. It needs a port built with threads.
"""

try:
    from threading import Event, Lock, Thread  # noqa: F401
except ImportError:  # MicroPython
    import time

    import _thread

    _POLL_S = 0.01  # MicroPython's locks take no timeout everywhere: poll

    # _thread's lock has acquire/release and is a context manager.
    Lock = _thread.allocate_lock

    class Event:
        def __init__(self):
            self._flag = False

        def set(self):
            self._flag = True

        def clear(self):
            self._flag = False

        def is_set(self):
            return self._flag

        def wait(self, timeout=None):
            start = time.ticks_ms()
            while not self._flag:
                if timeout is not None and time.ticks_diff(time.ticks_ms(), start) >= timeout * 1000:
                    return False
                time.sleep(_POLL_S)
            return True

    class Thread:
        def __init__(self, target, args=(), name=None, daemon=False):
            self.name = name
            self._target = target
            self._args = args
            self._done = Event()

        def _run(self):
            try:
                self._target(*self._args)
            finally:
                self._done.set()

        def start(self):
            _thread.start_new_thread(self._run, ())

        def join(self, timeout=None):
            self._done.wait(timeout)

        def is_alive(self):
            return not self._done.is_set()
