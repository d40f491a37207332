"""`make verify`'s pure parts: partition projection, flag validation and the step runner's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitoring import verify
from monitoring.lake_projection import ProjectionError, hour_partition_values, partition_location
from monitoring.verify_checks import CheckFailed, Skipped, StepSpec

PARAMETERS = {
    "projection.enabled": "true",
    "storage.location.template": "s3://lake/raw/year=${year}/month=${month}/day=${day}/hour=${hour}/",
    **{f"projection.{key}.type": "integer" for key in ("year", "month", "day", "hour")},
    "projection.year.range": "2016,2050", "projection.year.digits": "4",
    "projection.month.range": "1,12", "projection.month.digits": "2",
    "projection.day.range": "1,31", "projection.day.digits": "2",
    "projection.hour.range": "0,23", "projection.hour.digits": "2",
}
KEYS = ("year", "month", "day", "hour")


def test_projection_resolves_the_utc_hour_with_zero_padding() -> None:
    reading = datetime(2026, 5, 3, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 2026-05-02 23:30 UTC
    assert partition_location(PARAMETERS, KEYS, hour_partition_values(reading)) == \
        "s3://lake/raw/year=2026/month=05/day=02/hour=23/"


@pytest.mark.parametrize(("change", "message"), [
    ({"projection.enabled": "false"}, "projection.enabled"),
    ({"projection.month.type": "enum"}, "projection.month.type"),
    ({"projection.year.range": "2016,2020"}, "outside projection.year.range"),
    ({"projection.day.range": "one,31"}, "projection.day.range must be"),
    ({"storage.location.template": "s3://lake/raw/year=${year}/"}, "has no ${month}"),
])
def test_projection_errors_name_the_parameter(change: dict[str, str], message: str) -> None:
    with pytest.raises(ProjectionError, match=message.replace("$", r"\$").replace("{", r"\{")):
        partition_location({**PARAMETERS, **change}, KEYS, hour_partition_values(datetime(2026, 1, 1, tzinfo=UTC)))


@pytest.mark.parametrize(("flags", "message"), [
    (["--lake-timeout", "0"], "--lake-timeout must be a positive"),
    (["--poll-interval", "700"], "--poll-interval must be positive and at most --lake-timeout"),
    (["--url", "ftp://x"], "--url must be http(s)://host"),
    (["--allow-alarm", "sensor-prod-critical-alb-elb-5xx"], "starting with 'sensor-dev-'"),
    (["--device-id", "bad id"], "--device-id must match"),
    (["--cdk-json", "/nonexistent/cdk.json"], "no such file"),
])
def test_bad_flags_are_refused_naming_the_flag(flags: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        verify.main(["--env", "dev", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_environment_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify.main(["--env", "nosuchenv"]) == 2
    assert "unknown environment 'nosuchenv'" in capsys.readouterr().err


def _step(name: str, outcome: BaseException | None, needs: str | None = None) -> StepSpec:
    def check(_ctx: object) -> str:
        if outcome is not None:
            raise outcome
        return f"{name} ok"
    return StepSpec(name, check, needs)


def test_a_failed_step_skips_what_needs_it_and_only_that() -> None:
    steps = (_step("a", None), _step("b", CheckFailed("broken")), _step("c", None, "b"), _step("d", None, "a"))
    results = verify.run(object(), steps)  # type: ignore[arg-type]
    assert [(r.name, r.status) for r in results] == [("a", "pass"), ("b", "fail"), ("c", "skip"), ("d", "pass")]
    assert results[2].detail == "needs b, which did not pass"
    assert verify.first_failure(results) == "b" and not verify.passed(results)


def test_an_explicit_skip_passes_but_an_unexpected_error_fails() -> None:
    results = verify.run(object(), (_step("a", Skipped("no output X locally")),))  # type: ignore[arg-type]
    assert results[0].status == "skip" and verify.passed(results)
    results = verify.run(object(), (_step("a", KeyError("id")),))  # type: ignore[arg-type]
    assert results[0].status == "fail" and "KeyError" in results[0].detail
    assert verify.format_line(results[0]).startswith("FAIL  a ")


def test_missing_credentials_fail_the_first_step_with_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert verify.main(["--env", "dev", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed_step"] == "outputs"
    assert "log in first" in report["steps"][0]["detail"]
    assert all(step["status"] == "skip" for step in report["steps"][1:])
