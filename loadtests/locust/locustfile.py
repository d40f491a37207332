"""The load-test suite's locustfile: users, the profile-driven load shape, and the threshold verdict.

    python -m loadtests.locust.run --profile smoke --host http://127.0.0.1:8000        (headless, results folder, plots)
    locust -f loadtests/locust/locustfile.py --load-profile step --host http://127.0.0.1:8000   (web UI)

Custom arguments (also in the web UI's custom parameters): --load-profile NAME, --load-users,
--load-ramp, --load-hold, --load-ramp-down, --load-thresholds NAME=VALUE,..., --loadtest-client-id,
--loadtest-client-secret, --data-seed, --summary-file PATH.

When Locust quits, the master (or the single process) measures the hold window, logs one line per
violated threshold (`threshold p99_ms violated: 612 ms > 450 ms (hold window 60 s)`), sets the exit
code (1 if any was violated, else 0), and writes the verdict to --summary-file as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

# `locust -f loadtests/locust/locustfile.py` puts loadtests/locust/ (not the repository) on sys.path.
REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

import gevent  # noqa: E402
from locust import events  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402

from loadtests.locust import profiles, target_guard, users  # noqa: E402
from loadtests.locust.shapes import TimelineShape  # noqa: E402
from loadtests.locust.thresholds import hold_window, violations  # noqa: E402
from loadtests.locust.ui_results import UiRunRecorder  # noqa: E402
from loadtests.locust.users import BatchIngestUser, DashboardUser, SingleIngestUser, TelemetryUser  # noqa: E402, F401

log = logging.getLogger("loadtests")


class LoadProfileShape(TimelineShape):
    """The timeline of the profile chosen with --load-profile (and the --load-* overrides)."""

    def timeline(self, environment):
        return profiles.active_profile(environment).timeline


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    profiles.add_locust_arguments(parser)
    users.add_locust_arguments(parser)
    parser.add_argument("--summary-file", default="", include_in_web_ui=False,
                        help="write the threshold verdict here as JSON (python -m loadtests.locust.run sets it)")
    parser.add_argument("--ui-results-dir", default="", include_in_web_ui=False,
                        help="web UI: each test run writes its own results folder here (python -m loadtests.locust.run --ui)")


@events.init.add_listener
def _guard_the_target(environment, **_kwargs) -> None:
    """The run may only target the configured platform URL (loadtests/locust/target_guard.py)."""
    target_guard.remember_configured_target(environment)
    target_guard.install_web_ui_guard(environment)


@events.test_start.add_listener
def _test_start(environment, **_kwargs) -> None:
    try:
        target_guard.check(environment, environment.host)
    except target_guard.TargetNotAllowed as refusal:
        # Before seeding or any user: nothing is sent. The users refuse too (users.ApiUser.on_start).
        log.error("load test refused: %s", refusal)
        environment.loadtest_refused = str(refusal)
        environment.process_exit_code = 1
        runner = environment.runner
        if runner is not None:
            runner.stats.log_error("TARGET", "refused", str(refusal))  # the UI's Failures tab shows it
            # Headless: end the process (exit 1); web UI: stop this run and keep the UI up.
            headless = getattr(environment.parsed_options, "headless", False)
            gevent.spawn_later(0.1, runner.quit if headless else runner.stop)
        return
    environment.loadtest_refused = None
    if isinstance(environment.runner, WorkerRunner):
        return
    profile = profiles.active_profile(environment)
    users.apply_mix(profile.mix)
    hold_window(environment).reset()
    environment.loadtest_started = True
    log.info("profile %s: %s; thresholds %s", profile.name, profile.description,
             {name: value for name, value in profile.thresholds.as_dict().items() if value is not None})
    users.seed_history_if_master(environment)
    ui_results = getattr(environment.parsed_options, "ui_results_dir", "")
    if ui_results:
        environment.ui_run = UiRunRecorder(environment, Path(ui_results), profile.name)


@events.test_stop.add_listener
def _ui_run_results(environment, **_kwargs) -> None:
    recorder = getattr(environment, "ui_run", None)
    if recorder is None or isinstance(environment.runner, WorkerRunner):
        return
    environment.ui_run = None
    summary, _problems = judge(environment)
    recorder.finish(summary)


def judge(environment) -> tuple[dict, list[str]]:
    """The threshold verdict over the hold window, as written to summary.json."""
    profile = profiles.active_profile(environment)
    hold = hold_window(environment)
    metrics, window = hold.measure(environment.stats.total, time.time())
    problems = violations(metrics, profile.thresholds)
    summary = {"profile": profile.as_dict(), "host": environment.host, "window": window,
               "hold_started_at": hold.start and hold.start.at, "hold_ended_at": hold.end and hold.end.at,
               "metrics": metrics.as_dict(), "violations": problems, "passed": not problems}
    return summary, problems


@events.quitting.add_listener
def _verdict(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # a worker's statistics are partial; the master judges
    if not getattr(environment, "loadtest_started", False):
        log.info("no test was started (web UI left idle): no threshold verdict")
        return
    summary, problems = judge(environment)
    for problem in problems:
        log.error(problem)
    # The thresholds are the verdict: a failure ratio within fail_ratio must not fail the run either
    # (Locust would exit 1 on any failed request otherwise).
    environment.process_exit_code = 1 if problems else 0
    if not problems:
        log.info("all thresholds met over the %s window (%.0f s): %s", summary["window"],
                 summary["metrics"]["duration_s"],
                 ", ".join(f"{name}={value:.4g}" for name, value in summary["metrics"].items()))
    summary_file = getattr(environment.parsed_options, "summary_file", "")
    if summary_file:
        Path(summary_file).write_text(json.dumps(summary, indent=2) + "\n")
