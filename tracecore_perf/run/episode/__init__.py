"""The episode side: everything that runs under the episode interpreter, one module per role.

Standard library only (``agent_bench`` imported where TraceCore's work needs it, msgspec and
jsonschema-rs only where they are optional), so ``--python`` can point at any interpreter that
has TraceCore installed and nothing of ours. ``run/episode_process.py`` loads this package from
its source files under a name of its own (``tracecore_perf_episode``), never from
``__pycache__``; the harness imports the same files as ``tracecore_perf.run.episode`` for what
both sides share (``constants``) and a few helpers (``system.remove_tree``, ``callgrind``).

The modules, from the process tree down:

- ``zygote``: the zygote (warms TraceCore, forks a worker per slot), ``serve``'s fork loop
  every process of the episode interpreter lives in, and ``start``.
- ``worker``: a worker, which forks one episode process per job and supervises it.
- ``episode``: inside an episode process (its setup, its result, ``finish``) and the worker's
  check of what it reported.
- ``artifact``: TraceCore's artifact as ``persist_run`` writes it, its size bound, its
  placing in the run, host faults.
- ``spec``: the ``--strict-spec`` check (TraceCore's, its schema walk answered by
  jsonschema-rs), and ``warm_verdict``: all a worker's verdict loads before any episode.
- ``probe``: the probe, the check of one agent file, the interpreter's environment, metrics.
- ``warmup``: warming the zygote, and the warm-up episodes (``rehearse``).
- ``callgrind``: instruction counts (count files, calibration, implausible counts).
- ``capped_log``: an episode's output, kept up to a cap.
- ``sandbox``: ``--sandbox`` and the one-process filter.
- ``role``, ``system``, ``json_codec``, ``state``, ``constants``: what the roles share: the
  greeting, system calls, JSON with msgspec where present, the one :class:`state.EpisodeSide`,
  the constants the harness uses too.
"""
