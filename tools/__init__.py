"""Host-side tools: the console client, the QEMU runner, the conformance
statement generator and the benchmarks (CPython only)."""
