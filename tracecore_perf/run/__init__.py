"""The run pipeline: scenario rows in, a published run out.

``scenario`` plans the jobs; ``harness`` runs one run start to end (validate, run directory,
``orchestrator``'s batch, evidence check, ``publish``); the orchestrator drives the
``launcher`` (harness side of the zygote and workers, speaking ``protocol``) and
the ``episode`` package (inside the episode interpreter, one module per role), the ``monitor`` and the ``writer``;
``integrity`` checks the evidence and ``strays`` kills what episodes leave behind;
``rundir`` is the run's working state and ``publish`` its published artifacts. ``console``
and ``logs`` are what a person sees.

Library entry points: :func:`harness.start`, :func:`harness.resume`, :func:`harness.preflight`.
"""
