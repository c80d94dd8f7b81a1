"""The report: ``charts`` draws a published run (matplotlib, Agg), ``page`` fills the HTML
report (``templates/report.html.j2``) with the charts and the verdicts.

Library entry point: :func:`page.write_report`.
"""
