"""Board support: which drivers a given box uses and with what limits.

A board file is data and wiring, not logic (Zephyr's boards/ and
CircuitPython's board module are the model). For now modgate knows the
development host with its simulated acquisition board (hal.acq.sim).
"""
