#!/usr/bin/env python3
"""Checks the Grafana dashboard and the alert rules against the metrics hj212d exports.

Usage: scripts/check-dashboard.py [--promql-rules OUT.yml] DASHBOARD.json [RULES.yml ...]

- the dashboard is valid JSON with an `__inputs` entry DS_PROMETHEUS, a `datasource` template
  variable of type prometheus and unique panel ids;
- every panel, target and query variable takes its datasource from the variable
  (`${datasource}` or `${DS_PROMETHEUS}`), never a hard-coded uid, so it imports anywhere;
- every `hj212_*` metric name in a PromQL expression of the dashboard, and anywhere in the rule
  files, is one docs/metrics.md lists (histograms with their _bucket/_sum/_count series), or one
  of the VictoriaMetrics names of the line-protocol fields (README "Time-series sink");
- with --promql-rules, the dashboard's expressions (Grafana variables replaced by sample values)
  are written as recording rules, for `promtool check rules` to parse the PromQL.

Standard library only. Exits 1 with one line per problem.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASOURCE_REFS = {"${datasource}", "${DS_PROMETHEUS}"}
# VictoriaMetrics names line-protocol fields `{measurement}_{field}`: measurement `hj212` and
# the fields of the README's data model.
READING_FIELDS = ["rtd", "min", "avg", "max", "cou", "zs_rtd", "zs_min", "zs_avg", "zs_max"]
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def documented_metrics():
    """Metric names from the table in docs/metrics.md, with the series a histogram exports."""
    names = set()
    for line in (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`(hj212_[a-z0-9_]+)`\s*\|\s*(\w+)", line)
        if match:
            name, kind = match.groups()
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    if not names:
        sys.exit("check-dashboard: no metrics found in docs/metrics.md (table format changed?)")
    return names | {f"hj212_{field}" for field in READING_FIELDS}


def metric_names(promql):
    """`hj212_*` identifiers of an expression, outside strings and label matchers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    return set(re.findall(r"(?<![A-Za-z0-9_:])hj212_[A-Za-z0-9_:]*", text))


def datasource_problem(where, datasource):
    uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
    if uid not in DATASOURCE_REFS:
        return f"{where}: datasource {json.dumps(datasource)} is not the ${{datasource}} variable"
    return None


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def check_dashboard(path, known):
    problems = []
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"{path}: not valid JSON: {error}"], []
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus" for i in dashboard.get("__inputs", [])):
        problems.append(f"{path}: no __inputs entry DS_PROMETHEUS for a prometheus datasource")
    variables = dashboard.get("templating", {}).get("list", [])
    if not any(v.get("name") == "datasource" and v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
        problems.append(f"{path}: no template variable `datasource` of type datasource (prometheus)")
    exprs = []
    for variable in variables:
        if variable.get("type") != "query":
            continue
        where = f"{path}: variable {variable.get('name')}"
        problem = datasource_problem(where, variable.get("datasource"))
        if problem:
            problems.append(problem)
        query = variable.get("query")
        exprs.append((where, query.get("query", "") if isinstance(query, dict) else str(query)))
    ids = set()
    for panel in all_panels(dashboard.get("panels", [])):
        where = f"{path}: panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.append(f"{where}: duplicate panel id")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        for problem in [datasource_problem(where, panel.get("datasource"))] + [
            datasource_problem(f"{where} target {t.get('refId')}", t.get("datasource")) for t in panel.get("targets", [])
        ]:
            if problem:
                problems.append(problem)
        if not panel.get("targets"):
            problems.append(f"{where}: no queries")
        exprs.extend((f"{where} target {t.get('refId')}", t.get("expr", "")) for t in panel.get("targets", []))
    for where, expr in exprs:
        for name in sorted(metric_names(expr) - known):
            problems.append(f"{where}: metric {name} is not in docs/metrics.md")
    return problems, [expr for _, expr in exprs]


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$mn": ".*"}


def promql_rules(exprs):
    """A Prometheus rule file with each expression as a recording rule (label_values() excepted)."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, expr in enumerate(exprs):
        if expr.startswith("label_values("):
            continue
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        lines += [f"      - record: dashboard_expr_{number}", f"        expr: {json.dumps(expr, ensure_ascii=False)}"]
    return "\n".join(lines) + "\n"


def check_rules(path, known):
    # The whole file: expressions and the metric names annotations point operators to.
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return [f"{path}: {error}"]
    return [
        f"{path}:{number}: metric {name} is not in docs/metrics.md"
        for number, line in enumerate(text.splitlines(), 1)
        for name in sorted(metric_names(line) - known)
    ]


def main(argv):
    args = argv[1:]
    out = None
    if args[:1] == ["--promql-rules"] and len(args) >= 2:
        out, args = Path(args[1]), args[2:]
    if not args:
        sys.exit(__doc__)
    known = documented_metrics()
    problems, exprs = check_dashboard(Path(args[0]), known)
    for rules in args[1:]:
        problems += check_rules(Path(rules), known)
    if out is not None:
        out.write_text(promql_rules(exprs), encoding="utf-8")
    for problem in problems:
        print(f"check-dashboard: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
