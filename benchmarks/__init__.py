"""Benchmarks for airflow-provider-dropbox against the local emulator (see BENCHMARKS.md).

Entry point: ``python -m benchmarks.run`` (``--quick`` for tiny sizes, ``--only NAME``, ``--out FILE``).
Every timed trial runs in a fresh child process (``benchmarks.trial``) so that peak memory can be measured
per trial and the official SDK can be imported with its host variables pointing at the emulator.
"""
