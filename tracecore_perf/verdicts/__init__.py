"""The verdicts on published runs: ``check`` (thresholds and ``trends``), ``compare`` (two
runs, per (agent, task_ref)), their Structs in ``models`` and the notices they share in
``notices``. Two neighbours use them from outside this package: ``tracecore_perf.ab`` (two
interpreters, interleaved, then ``compare``) and ``tracecore_perf.export`` (one module per
output format of a verdict).

Library entry points: :func:`check.evaluate`, :func:`compare.compare_runs`,
:func:`tracecore_perf.ab.run_ab`.
"""
