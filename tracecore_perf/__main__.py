from tracecore_perf.cli import main

raise SystemExit(main())
