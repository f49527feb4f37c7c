"""One module per scenario family; each is run as ``python -m benchmarks.scenarios.<name>``.

A scenario child prints exactly one JSON object on its last stdout line:
``{"metrics": {...}, "notes": [...]}`` or ``{"skipped": "why"}``.
"""
