"""A matrix of runs (``tracecore-perf matrix FILE``): many ordinary runs ("cells") from one TOML
file, here one after another (``local``) or one per quiet host of a Ray cluster
(``ray_backend``, the only module that imports Ray). ``plan`` reads and validates the file,
``session`` drives a backend and writes what ``results`` renders. The command line is
``cli/matrix.py``.
"""
