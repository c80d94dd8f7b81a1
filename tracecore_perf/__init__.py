"""tracecore-perf: a performance harness for TraceCore agent episodes."""

__version__ = "0.2.0"
