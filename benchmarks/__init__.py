"""Benchmarks for exotel-async against the bundled sandbox; run ``python -m benchmarks``.

Every scenario is a script (``python benchmarks/<name>.py [--quick]``) and a module whose
``run(quick=..., runs=...)`` returns a ``Result``; ``run_all`` runs them in turn.
"""
