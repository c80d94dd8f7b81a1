"""``--format junit``: a JUnit XML file CI systems show as test results (one testcase per
threshold, trend check and group; a broken one is a ``<failure>``); the command line
writes it to the file and says where it went.

ElementTree escapes markup (``&``, ``<``, quotes) but writes any character it is given; what
XML 1.0 does not allow (an agent's U+FFFE, a C0 control) would make the file unreadable, so
every text of a case goes in through ``escape.xml``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby

from tracecore_perf.escape import xml
from tracecore_perf.export import cases
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Verdict


def document(result: Verdict | Comparison | HistoryVerdict) -> ET.ElementTree:
    rows = cases(result)
    if isinstance(result, HistoryVerdict):
        name = f"tracecore-perf history check {result.newest}"
    else:
        name = f"tracecore-perf {'check ' + result.stamp if isinstance(result, Verdict) else 'compare ' + result.current}"
    root = ET.Element(
        "testsuites",
        name=name,
        tests=str(len(rows)),
        failures=str(sum(not c.ok for c in rows)),
        skipped=str(sum(c.skipped for c in rows)),
    )
    for suite_name, group in groupby(rows, key=lambda c: c.suite):
        members = list(group)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=suite_name,
            tests=str(len(members)),
            failures=str(sum(not c.ok for c in members)),
            skipped=str(sum(c.skipped for c in members)),
        )
        for case in members:
            message = xml(case.message)
            element = ET.SubElement(suite, "testcase", classname=f"tracecore_perf.{suite_name}", name=xml(case.name))
            if case.skipped:
                ET.SubElement(element, "skipped", message=message)
            elif not case.ok:
                failure = ET.SubElement(element, "failure", message=message, type=case.severity or "error")
                failure.text = xml(case.details) or message
            elif case.severity == "warning" or case.details:
                out = ET.SubElement(element, "system-out")
                out.text = f"{(case.severity or 'info').upper()}: {message}\n{xml(case.details)}".strip()
    ET.indent(root)
    return ET.ElementTree(root)


def render(result: Verdict | Comparison | HistoryVerdict) -> bytes:
    return ET.tostring(document(result).getroot(), encoding="utf-8", xml_declaration=True)
