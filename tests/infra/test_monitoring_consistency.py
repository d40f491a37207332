"""The alarm catalogue agrees with its runbooks and with the metrics the code actually emits.

- every catalogue alarm has `runbooks/alarms/<name>.md` naming the alarm, and every runbook there
  belongs to an alarm (an index `README.md` excepted);
- every custom metric (namespace SensorPlatform) an alarm or a dashboard uses is declared by its
  emitter, with the emitter's dimension keys: the service (`app/observability/metrics.REGISTRY`,
  dimensions Service/Environment) or the archiver (`lambda/archiver/handler.py` ARCHIVER_METRICS,
  Powertools dimension `service`);
- critical alarms detect within two minutes; the dashboards synthesize to valid JSON.

The last tests break a copy of the catalogue on purpose to show the checks can fail.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable
from pathlib import Path

from app.observability import metrics as service_metrics
from monitoring import catalogue, dashboards
from monitoring.catalogue import AlarmSpec, Deployed
from tests.conftest import REPO_ROOT
from tests.infra.conftest import Synthesized
from tests.infra.test_monitoring import dashboard_bodies

RUNBOOK_DIRECTORY = REPO_ROOT / "runbooks" / "alarms"
ARCHIVER_HANDLER = REPO_ROOT / "lambda" / "archiver" / "handler.py"
NOT_RUNBOOKS = {"README.md"}
# Every variant of the deployed resources, so optional alarms (replica lag) are checked too.
DEPLOYED = (catalogue.sample_deployed(replica=True), catalogue.sample_deployed(replica=False, brokers=2))


def archiver_metric_names() -> set[str]:
    """ARCHIVER_METRICS of the archiver handler, read without importing it (it needs its bundle)."""
    module = ast.parse(ARCHIVER_HANDLER.read_text())
    constants = {
        node.targets[0].id: node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    (declaration,) = [
        node.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "ARCHIVER_METRICS"
    ]
    assert isinstance(declaration, ast.Tuple)
    return {constants[element.id] for element in declaration.elts if isinstance(element, ast.Name)}


def declared_custom_metrics() -> dict[str, set[frozenset[str]]]:
    """Metric name -> the dimension-key sets its emitters publish it with."""
    declared: dict[str, set[frozenset[str]]] = {}
    service_keys = frozenset(service_metrics.dimensions_for("any"))
    for name in service_metrics.REGISTRY:
        declared.setdefault(name, set()).add(service_keys)
    for name in archiver_metric_names():
        declared.setdefault(name, set()).add(frozenset({"service"}))
    return declared


def used_custom_metrics(
    alarms: Iterable[AlarmSpec], boards: Iterable[dashboards.Dashboard], deployed: Deployed
) -> list[tuple[str, catalogue.Metric]]:
    """(where, metric) for every SensorPlatform metric an alarm or dashboard graph uses."""
    used = []
    for spec in alarms:
        if spec.applies(deployed):
            used += [(f"alarm {spec.name}", m) for m in catalogue.metrics_of(spec.source(deployed))]
    for board in boards:
        for source in dashboards.sources(board, deployed):
            used += [(f"dashboard {board.suffix}", m) for m in catalogue.metrics_of(source)]
    return [(where, m) for where, m in used if m.namespace == catalogue.CUSTOM_NAMESPACE]


def custom_metric_problems(
    alarms: Iterable[AlarmSpec] = catalogue.ALARMS,
    boards: Iterable[dashboards.Dashboard] = dashboards.DASHBOARDS,
) -> list[str]:
    declared = declared_custom_metrics()
    alarms, boards = tuple(alarms), tuple(boards)
    problems = set()
    for deployed in DEPLOYED:
        for where, metric in used_custom_metrics(alarms, boards, deployed):
            if metric.name not in declared:
                problems.add(f"{where}: metric {metric.name!r} is not emitted (not in REGISTRY or ARCHIVER_METRICS)")
            elif frozenset(metric.dimensions) not in declared[metric.name]:
                problems.add(
                    f"{where}: metric {metric.name!r} with dimensions {sorted(metric.dimensions)}; "
                    f"emitted with {sorted(sorted(keys) for keys in declared[metric.name])}"
                )
    return sorted(problems)


def runbook_problems(alarms: Iterable[AlarmSpec] = catalogue.ALARMS, directory: Path = RUNBOOK_DIRECTORY) -> list[str]:
    alarms = tuple(alarms)
    problems = []
    for spec in alarms:
        path = directory / spec.runbook
        if not path.is_file():
            problems.append(f"missing runbook runbooks/alarms/{spec.runbook} for alarm {spec.name}")
        elif spec.name not in path.read_text():
            problems.append(f"runbooks/alarms/{spec.runbook} does not mention the alarm name {spec.name!r}")
    expected = {spec.runbook for spec in alarms}
    # Deployment guards share one runbook per kind of deployment (anchors per alarm).
    expected |= {spec.runbook.split("#", 1)[0] for spec in catalogue.DEPLOYMENT_ALARMS}
    present = {path.name for path in directory.glob("*.md")} - NOT_RUNBOOKS if directory.is_dir() else set()
    problems += [f"runbooks/alarms/{name} belongs to no catalogue alarm" for name in sorted(present - expected)]
    return problems


def test_every_alarm_has_its_runbook_and_every_runbook_an_alarm() -> None:
    problems = runbook_problems()
    assert not problems, "alarm runbooks out of step with monitoring/catalogue.py:\n  " + "\n  ".join(problems)


def test_custom_metrics_are_declared_by_their_emitters() -> None:
    problems = custom_metric_problems()
    assert not problems, "\n".join(problems)


def test_the_emitter_declarations_are_found() -> None:
    assert archiver_metric_names() == {"ArchivedRecords", "ArchiveDeadLetters", "ArchiveLagSeconds"}
    assert {"OutboxOldestAge", "DeadLetterBacklog", "DbCircuitOpen"} <= set(service_metrics.REGISTRY)
    # The checks look at something: alarms and dashboards use service and archiver metrics.
    used = {m.name for _, m in used_custom_metrics(catalogue.ALARMS, dashboards.DASHBOARDS, DEPLOYED[0])}
    assert {"OutboxOldestAge", "DeadLetterBacklog", "DbCircuitOpen", "ArchiveLagSeconds"} <= used


def test_gauges_are_alarmed_on_their_maximum() -> None:
    for spec in catalogue.ALARMS:
        for metric in catalogue.metrics_of(spec.source(DEPLOYED[0])):
            definition = service_metrics.REGISTRY.get(metric.name)
            if metric.namespace == catalogue.CUSTOM_NAMESPACE and definition is not None:
                if definition.kind == service_metrics.Kind.GAUGE:
                    assert metric.statistic == "Maximum", spec.name


def test_critical_alarms_detect_within_two_minutes() -> None:
    slow = [s.name for s in catalogue.CRITICAL if s.detection_seconds > catalogue.CRITICAL_DETECTION_SECONDS]
    assert not slow
    assert {s.severity for s in catalogue.CRITICAL} == {"critical"}
    assert {s.severity for s in catalogue.WARNING} == {"warning"}


def test_dashboards_and_thresholds_refer_to_catalogue_alarms() -> None:
    names = {spec.name for spec in catalogue.ALARMS}
    for board in dashboards.DASHBOARDS:
        for widget in board.widgets:
            for name in getattr(widget, "thresholds", ()) or ():
                assert name in names, f"{board.suffix}: {name}"
            alarms = getattr(widget, "alarms", None)
            assert alarms is None or set(alarms) <= names


def test_dashboards_synthesize_to_valid_json(dev: Synthesized) -> None:
    bodies = dashboard_bodies(dev.templates["Monitoring"])
    assert len(bodies) == len(dashboards.DASHBOARDS)
    assert all(body["widgets"] for body in bodies.values())


# --- the checks can fail ----------------------------------------------------------------------------


def test_a_misspelt_metric_name_is_reported(monkeypatch) -> None:
    misspelt = dataclasses.replace(
        catalogue.by_name("outbox-oldest-age"),
        source=lambda d: catalogue.service_metric(d, "OutboxOldestAgeSeconds"),
    )
    broken = tuple(misspelt if spec.name == misspelt.name else spec for spec in catalogue.ALARMS)
    monkeypatch.setattr(catalogue, "ALARMS", broken)
    problems = custom_metric_problems(catalogue.ALARMS)
    assert problems == [
        "alarm outbox-oldest-age: metric 'OutboxOldestAgeSeconds' is not emitted (not in REGISTRY or ARCHIVER_METRICS)"
    ]


def test_wrong_dimension_keys_are_reported() -> None:
    wrong = dataclasses.replace(
        catalogue.by_name("db-circuit-open"),
        source=lambda d: catalogue.Metric(catalogue.CUSTOM_NAMESPACE, "DbCircuitOpen", {"Service": "ingest"}, "Maximum"),
    )
    problems = custom_metric_problems((wrong,), ())
    assert len(problems) == 1 and "'DbCircuitOpen' with dimensions ['Service']" in problems[0]


def test_a_missing_or_stray_runbook_is_reported(tmp_path: Path) -> None:
    for spec in catalogue.ALARMS:
        (tmp_path / spec.runbook).write_text(f"# {spec.name}\n")
    assert runbook_problems(directory=tmp_path) == []
    (tmp_path / "msk-offline-partitions.md").unlink()
    (tmp_path / "db-circuit-open.md").write_text("# something else\n")
    (tmp_path / "old-alarm.md").write_text("# old-alarm\n")
    assert runbook_problems(directory=tmp_path) == [
        "missing runbook runbooks/alarms/msk-offline-partitions.md for alarm msk-offline-partitions",
        "runbooks/alarms/db-circuit-open.md does not mention the alarm name 'db-circuit-open'",
        "runbooks/alarms/old-alarm.md belongs to no catalogue alarm",
    ]
