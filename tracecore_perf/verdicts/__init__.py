"""The verdicts on published runs: ``check`` (thresholds and ``trends``), ``compare`` (two
runs, per (agent, task_ref)), ``ab`` (two interpreters, interleaved), their Structs in
``models`` and one module per output format in ``export``.

Library entry points: :func:`check.evaluate`, :func:`compare.compare_runs`, :func:`ab.run_ab`.
"""
