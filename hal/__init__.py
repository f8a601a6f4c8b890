"""Hardware abstraction: one small interface per kind of device, and the
drivers that implement it. MicroPython's ``machine`` module is the model:
few methods, plain types, no framework."""
