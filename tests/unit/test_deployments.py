import getpass
import inspect
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from uuid import uuid4

import pytest
import yaml
from prefect.events.schemas.automations import AutomationCore
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from flows.backfill import backfill_weather
from pipeline.dashboard.settings import DashboardSettings
from pipeline.deploy import QUEUES, automation_specs, with_deployment_ids
from pipeline.settings import Settings
from pipeline.spread import CHUNK_DEPLOYMENT

CHECKOUT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = CHECKOUT / "deployments"
UNITS = ("prefect-server.service", "prefect-worker.service", "weather-freshness.service")


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((CHECKOUT / "prefect.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def daily(prefect_yaml) -> dict:
    return _deployment(prefect_yaml, "daily")


@pytest.fixture(scope="module")
def backfill(prefect_yaml) -> dict:
    return _deployment(prefect_yaml, "backfill")


def _deployment(prefect_yaml: dict, name: str) -> dict:
    [deployment] = [d for d in prefect_yaml["deployments"] if d["name"] == name]
    return deployment


def test_prefect_yaml_daily_runs_at_0600_utc(daily):
    [schedule] = daily["schedules"]

    assert schedule["cron"] == "0 6 * * *"
    assert schedule["timezone"] == "UTC"
    assert schedule["active"] is True
    assert schedule["slug"]


def test_prefect_yaml_daily_runs_one_at_a_time_with_an_explicit_collision_strategy(daily):
    assert daily["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def test_prefect_yaml_daily_uses_the_daily_queue_and_enforces_its_parameter_schema(daily):
    assert daily["work_pool"]["work_queue_name"] == "daily"
    assert daily["enforce_parameter_schema"] is True


def test_prefect_yaml_daily_defaults_leave_the_date_to_the_schedule(daily):
    flow = load_flow_from_entrypoint(str(CHECKOUT / daily["entrypoint"]))

    assert flow.name == "daily-weather"
    assert daily["parameters"] == {"logical_date": None, "lookback_days": None}
    assert set(daily["parameters"]) <= set(inspect.signature(flow.fn).parameters)


def test_prefect_yaml_backfill_has_no_schedule_its_own_limit_and_the_backfill_queue(backfill, daily):
    assert backfill["schedules"] == []
    assert backfill["concurrency_limit"]["limit"] == 1
    assert backfill["concurrency_limit"]["collision_strategy"] in ("ENQUEUE", "CANCEL_NEW")
    assert backfill["work_pool"]["work_queue_name"] == "backfill"
    assert backfill["enforce_parameter_schema"] is True


def test_prefect_yaml_backfill_runs_must_name_their_dates(backfill):
    flow = load_flow_from_entrypoint(str(CHECKOUT / backfill["entrypoint"]))
    schema = parameter_schema(flow).model_dump()

    assert flow.name == "backfill-weather"
    assert {"start_date", "end_date"} <= set(schema["required"])
    assert not {"start_date", "end_date"} & set(backfill["parameters"])
    assert set(backfill["parameters"]) <= set(schema["properties"])


def test_prefect_yaml_work_queues_exist_with_daily_first(daily, backfill):
    assert QUEUES[daily["work_pool"]["work_queue_name"]] < QUEUES[backfill["work_pool"]["work_queue_name"]]
    assert QUEUES["daily"] == 1


def test_prefect_yaml_runs_flows_from_the_workers_checkout_without_build_or_push(prefect_yaml):
    assert prefect_yaml["build"] is None
    assert prefect_yaml["push"] is None
    assert prefect_yaml["pull"] == [{"pipeline.checkout.set_working_directory": {}}]


def test_prefect_yaml_leaves_the_work_pool_to_the_default_setting(prefect_yaml):
    # PREFECT_DEFAULT_WORK_POOL_NAME, else pyproject.toml's default, picks the pool.
    assert all("name" not in d["work_pool"] for d in prefect_yaml["deployments"])


def test_pyproject_defaults_the_work_pool_to_weather_pool():
    prefect_table = tomllib.loads((CHECKOUT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["prefect"]

    assert prefect_table["deployments"]["default_work_pool_name"] == "weather-pool"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_passes_systemd_analyze_verify(unit, tmp_path):
    # Rendered as deployments/bootstrap.sh renders it, against this checkout and its .venv.
    if not (CHECKOUT / ".venv" / "bin" / "prefect").exists():
        pytest.skip("the unit runs .venv/bin/prefect, which this checkout does not have")
    text = (DEPLOYMENTS / "systemd" / unit).read_text(encoding="utf-8")
    rendered = tmp_path / unit
    rendered.write_text(text.replace("@USER@", getpass.getuser()).replace("@CHECKOUT@", str(CHECKOUT)))

    result = subprocess.run(["systemd-analyze", "verify", str(rendered)], capture_output=True, text=True)

    # verify exits 0 on unknown keys, reporting them on stderr.
    assert result.returncode == 0, result.stderr
    assert unit not in result.stderr, result.stderr


def test_systemd_worker_unit_restarts_always_and_polls_the_default_pool():
    text = (DEPLOYMENTS / "systemd" / "prefect-worker.service").read_text(encoding="utf-8")

    assert "Restart=always" in text.splitlines()
    assert re.search(
        r"^ExecStart=.* worker start --pool \$\{PREFECT_DEFAULT_WORK_POOL_NAME\} --type process", text, re.M
    )


def test_systemd_server_unit_keeps_analytics_off():
    text = (DEPLOYMENTS / "systemd" / "prefect-server.service").read_text(encoding="utf-8")

    assert re.search(r"^ExecStart=.* server start --analytics-off$", text, re.M)


def test_systemd_server_unit_migrates_before_start_and_never_on_start():
    lines = (DEPLOYMENTS / "systemd" / "prefect-server.service").read_text(encoding="utf-8").splitlines()
    [pre] = [line for line in lines if line.startswith("ExecStartPre=")]
    [start] = [line for line in lines if line.startswith("ExecStart=")]

    assert pre.endswith("/.venv/bin/prefect server database upgrade -y")
    assert start.startswith("ExecStart=/usr/bin/env PREFECT_SERVER_DATABASE_MIGRATE_ON_START=false ")


def test_env_example_puts_the_server_on_a_postgres_database_named_prefect():
    text = (DEPLOYMENTS / "weather.env.example").read_text(encoding="utf-8")
    [url] = re.findall(r"^PREFECT_SERVER_DATABASE_CONNECTION_URL=(.*)$", text, re.M)

    assert url.startswith("postgresql+asyncpg://") and url.endswith("/prefect")


def test_bootstrap_sh_passes_bash_n():
    result = subprocess.run(["bash", "-n", str(DEPLOYMENTS / "bootstrap.sh")], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_env_example_names_only_known_pipeline_settings_and_holds_no_secrets():
    text = (DEPLOYMENTS / "weather.env.example").read_text(encoding="utf-8")
    assignments = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))
    pipeline_settings = {
        name.removeprefix("PIPELINE_").lower()
        for name in assignments
        if name.startswith("PIPELINE_") and name not in ("PIPELINE_CHECKOUT", "PIPELINE_SETTINGS_FROM_BLOCKS")
    }

    dashboard_settings = {f"dashboard_{name}" for name in DashboardSettings.model_fields}
    assert pipeline_settings <= set(Settings.model_fields) | dashboard_settings
    for name, value in assignments.items():
        if any(word in name for word in ("PASSWORD", "SECRET", "DATABASE_URL", "CONNECTION_URL", "WEBHOOK_URL")):
            assert "CHANGE_ME" in value, f"{name} must hold a placeholder, not a value"


def test_automations_parse_as_prefect_automations_with_unique_names():
    names = [
        # Deployments are named in the files and resolved to ids when applied.
        AutomationCore.model_validate(with_deployment_ids(spec, lambda name: uuid4())).name
        for path in sorted((DEPLOYMENTS / "automations").glob("*.yaml"))
        for spec in automation_specs(yaml.safe_load(path.read_text(encoding="utf-8")))
    ]

    assert names
    assert len(names) == len(set(names))


def test_automation_specs_accept_every_shape_of_prefect_automation_create():
    spec = {"name": "a"}

    assert automation_specs(spec) == [spec]
    assert automation_specs([spec, spec]) == [spec, spec]
    assert automation_specs({"automations": [spec]}) == [spec]
    assert automation_specs(None) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_freshness_timer_passes_systemd_analyze_verify_with_its_service(tmp_path):
    if not (CHECKOUT / ".venv" / "bin" / "pipeline").exists():
        pytest.skip("the service runs .venv/bin/pipeline, which this checkout does not have")
    for unit in ("weather-freshness.service", "weather-freshness.timer"):
        text = (DEPLOYMENTS / "systemd" / unit).read_text(encoding="utf-8")
        (tmp_path / unit).write_text(text.replace("@USER@", getpass.getuser()).replace("@CHECKOUT@", str(CHECKOUT)))

    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "weather-freshness.timer")], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert "weather-freshness" not in result.stderr, result.stderr


def test_systemd_freshness_timer_runs_the_check_every_15_minutes_from_the_checkout():
    timer = (DEPLOYMENTS / "systemd" / "weather-freshness.timer").read_text(encoding="utf-8").splitlines()
    service = (DEPLOYMENTS / "systemd" / "weather-freshness.service").read_text(encoding="utf-8").splitlines()

    assert "OnCalendar=*:0/15" in timer
    assert "Unit=weather-freshness.service" in timer
    assert "ExecStart=@CHECKOUT@/.venv/bin/pipeline check-freshness" in service
    assert "Type=oneshot" in service


def test_bootstrap_sh_installs_and_enables_the_freshness_timer():
    text = (DEPLOYMENTS / "bootstrap.sh").read_text(encoding="utf-8")

    assert "install_unit weather-freshness.service" in text
    assert "install_unit weather-freshness.timer" in text
    assert "systemctl enable --quiet --now weather-freshness.timer" in text


def test_bootstrap_sh_installs_the_freshness_timer_only_where_a_warehouse_is_configured():
    text = (DEPLOYMENTS / "bootstrap.sh").read_text(encoding="utf-8")
    guard = 'if [ "$worker_only" = false ] && [ -n "${PIPELINE_DATABASE_URL:-}" ]; then'

    assert guard in text
    guarded = text.split(guard, 1)[1].split("\nfi\n", 1)[0]
    assert "install_unit weather-freshness.timer" in guarded
    assert text.count("install_unit weather-freshness.timer") == 1


def test_prefect_yaml_alerting_deployments_use_the_daily_queue_and_only_freshness_is_scheduled(prefect_yaml):
    report = _deployment(prefect_yaml, "report-run")
    freshness = _deployment(prefect_yaml, "freshness")

    assert load_flow_from_entrypoint(str(CHECKOUT / report["entrypoint"])).name == "report-run"
    assert load_flow_from_entrypoint(str(CHECKOUT / freshness["entrypoint"])).name == "check-freshness"
    assert report["schedules"] == []
    assert [(s["cron"], s["timezone"]) for s in freshness["schedules"]] == [("5 7 * * *", "UTC")]
    assert report["work_pool"]["work_queue_name"] == freshness["work_pool"]["work_queue_name"] == "daily"


def test_automations_run_deployments_that_prefect_yaml_declares(prefect_yaml):
    declared = {
        f"{load_flow_from_entrypoint(str(CHECKOUT / d['entrypoint'])).name}/{d['name']}"
        for d in prefect_yaml["deployments"]
    }
    named = [
        action["deployment_name"]
        for path in sorted((DEPLOYMENTS / "automations").glob("*.yaml"))
        for spec in automation_specs(yaml.safe_load(path.read_text(encoding="utf-8")))
        for action in spec["actions"]
        if "deployment_name" in action
    ]

    assert set(named) == {"report-run/report-run", "check-freshness/freshness"}
    assert set(named) <= declared


def test_with_deployment_ids_replaces_names_and_keeps_other_actions():
    spec = {
        "name": "a",
        "actions": [
            {"type": "run-deployment", "deployment_name": "report-run/report-run", "parameters": {"kind": "crashed"}},
            {"type": "cancel-flow-run"},
        ],
    }

    resolved = with_deployment_ids(spec, {"report-run/report-run": "1f0c"}.__getitem__)

    assert resolved["actions"] == [
        {"type": "run-deployment", "parameters": {"kind": "crashed"}, "deployment_id": "1f0c"},
        {"type": "cancel-flow-run"},
    ]
    assert "deployment_name" in spec["actions"][0]


def test_every_flow_has_a_time_limit():
    # Read from the settings when a run starts (pipeline.limits), not fixed in the decorator.
    for entrypoint, variable in (
        ("flows/daily.py:daily_weather", "PIPELINE_DAILY_TIMEOUT_SECONDS"),
        ("flows/backfill.py:backfill_weather", "PIPELINE_BACKFILL_TIMEOUT_SECONDS"),
    ):
        assert load_flow_from_entrypoint(str(CHECKOUT / entrypoint)).fn.time_limit == variable
    for entrypoint in ("flows/freshness.py:check_freshness", "flows/report.py:report_run"):
        assert load_flow_from_entrypoint(str(CHECKOUT / entrypoint)).timeout_seconds == 600


def test_the_backfill_deployment_accepts_every_reprocess_mode_including_transform_only():
    schema = parameter_schema(backfill_weather.fn).model_dump_for_openapi()
    reprocess = schema["properties"]["reprocess"]
    assert reprocess["enum"] == ["missing", "failed", "incomplete", "all", "transform"]


def test_prefect_yaml_backfill_chunk_is_the_deployment_a_spread_backfill_runs(prefect_yaml):
    chunk = _deployment(prefect_yaml, "backfill-chunk")
    flow = load_flow_from_entrypoint(str(CHECKOUT / chunk["entrypoint"]))
    schema = parameter_schema(flow).model_dump()

    assert f"{flow.name}/{chunk['name']}" == CHUNK_DEPLOYMENT
    assert {"first", "last", "location_ids"} <= set(schema["required"])
    assert chunk["schedules"] == []
    # Bounded by the weather-backfill-chunks global limit, not by a deployment limit of its own.
    assert "concurrency_limit" not in chunk
    assert chunk["work_pool"]["work_queue_name"] == "backfill"
    assert chunk["enforce_parameter_schema"] is True


def test_systemd_server_unit_keeps_leases_on_disk_unless_the_env_file_says_otherwise():
    lines = (DEPLOYMENTS / "systemd" / "prefect-server.service").read_text(encoding="utf-8").splitlines()
    setting = "Environment=PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect.server.concurrency.lease_storage.filesystem"

    # EnvironmentFile= overrides Environment=: a Redis lease storage in the env file wins.
    assert setting in lines
    assert "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE" not in next(
        line for line in lines if line.startswith("ExecStart=")
    )
