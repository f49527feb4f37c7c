"""Benchmarks of audit_logging against its peers: ``python -m benchmarks [--quick] [--out DIR]``.

Not part of the installed package. See ``benchmarks/README.md``.
"""
