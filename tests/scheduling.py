"""The order `make test` hands tests to its pytest-xdist workers: the known-long ones first.

pytest-xdist (`--dist load`) hands out tests in collection order, and pytest-django sorts that
order into three runs: database tests in a transaction, then transactional ones (live server,
subprocesses, the emulator), then tests without a database. The longest tests sit at the end of
the last two, so they started last and the run waited for them alone. Here each known-long test
moves to the front of its own run (a test without a database to the very front: it touches no
test database, so it may run before any other), and consecutive long tests are spread
`SPREAD` places apart so that the Makefile's `--maxschedchunk` hands them to different workers.
Within pytest-django's runs nothing else changes place, so a transactional test still never runs
before a test that needs the data migrations' rows its flush removes.

LONG_RUNNING lists node ids without parameters (every parameter moves), longest first, from
`make test PYTEST_ARGS="--durations=60"`; tests/test_scheduling.py checks each still exists.
"""

from __future__ import annotations

LONG_RUNNING = (
    "tests/bench/test_bench_smoke.py::test_each_benchmark_runs_end_to_end_and_prints_its_line",
    "tests/test_live_fleet.py::test_the_procfile_runs_the_live_fleet_and_stops_cleanly",
    "tests/workloads/runtime/test_shutdown_grace.py::test_sigterm_with_monitoring_down_exits_within_the_grace_and_hands_work_back",
    "tests/hardening/test_fuzz_api.py::test_sequences_of_operations_answer_as_documented",
    "tests/notifications/test_incidents_outbox.py::test_the_windows_of_one_slo_that_fire_together_are_one_incident",
    "tests/dashboards/test_overview.py::test_queries_do_not_grow_with_classes_or_history",
    "tests/browser/test_csp.py::test_every_screen_sends_the_policy_and_runs_without_a_violation",
    "tests/browser/test_migration_flow.py::test_a_plan_goes_from_baseline_to_cut_over_and_back",
    "tests/workloads/providers/test_local_metrics.py::test_series_cost_does_not_grow_with_classes",
    "tests/browser/test_oncall_flows.py::test_a_viewer_sees_no_action_buttons_on_any_screen",
    "tests/workloads/providers/test_local_queue.py::test_two_processes_leasing_at_once_never_get_the_same_message",
    "tests/hardening/test_hostile_payloads.py::test_any_json_text_in_the_edit_form_is_answered_without_a_5xx",
    "tests/hardening/test_hostile_payloads.py::test_any_json_payload_to_edit_and_replay_is_answered_without_a_5xx",
    "tests/workloads/test_telemetry_alerts.py::test_a_failure_spike_pages_within_the_short_window_and_resolves",
    "tests/api/test_url_convention.py::test_the_schema_marks_only_the_old_spellings_deprecated",
    "tests/dashboards/test_actions_screens.py::test_detail_queries_do_not_grow_with_the_number_of_steps",
    "tests/workloads/providers/test_local_fleet.py::test_the_runfleet_command_stops_its_workers_cleanly_on_sigterm",
    "tests/test_supervisor.py::test_a_celery_task_under_way_finishes_when_everything_stops",
    "tests/test_settings.py::test_a_new_embedded_database_migrates",
    "tests/test_settings.py::test_check_deploy_is_clean_with_production_settings",
    "tests/workloads/runtime/test_fleet_end_to_end.py::test_workers_of_a_class_without_a_handler_crash_loop_and_the_controller_flags_the_pool",
    "tests/hardening/test_csrf.py::test_every_page_refuses_a_post_without_the_token",
    "tests/hardening/test_fault_worker_killed.py::test_a_message_of_a_killed_worker_is_redelivered_and_processed_once",
    "tests/workloads/runtime/test_fleet_end_to_end.py::test_a_local_pool_of_two_real_workers_processes_events_then_drains_when_scaled_to_zero",
)
# Must match the Makefile's --maxschedchunk: xdist hands a worker at most that many tests at once.
SPREAD = 4


def _base_id(item) -> str:
    return item.nodeid.split("[", 1)[0]


def _run(item) -> int:
    """pytest-django's run of the test: 0 in a transaction, 1 transactional, 2 without a database
    (its pytest_collection_modifyitems, which sorts by this)."""
    from pytest_django.plugin import validate_django_db

    marker = item.get_closest_marker("django_db")
    transactional = uses_db = False
    if marker:
        transaction, reset_sequences, *_ = validate_django_db(marker)
        transactional, uses_db = bool(transaction or reset_sequences), True
    fixtures = getattr(item, "fixturenames", ())
    if transactional or "transactional_db" in fixtures or "live_server" in fixtures:
        return 1
    return 0 if uses_db or "db" in fixtures else 2


def _spread(long: list, rest: list) -> list:
    """Each long test followed by SPREAD - 1 others, so no two share a chunk of SPREAD."""
    ordered, rest = [], list(rest)
    for item in long:
        ordered.append(item)
        ordered.extend(rest[: SPREAD - 1])
        del rest[: SPREAD - 1]
    return ordered + rest


def long_tests_first(items: list) -> None:
    """Reorder `items` in place, after pytest-django's sort: the runs keep their order, except
    that the long tests without a database join the first."""
    rank = {node_id: index for index, node_id in enumerate(LONG_RUNNING)}
    if not any(_base_id(item) in rank for item in items):
        return
    runs: dict[int, tuple[list, list]] = {0: ([], []), 1: ([], []), 2: ([], [])}  # (long, others)
    for item in items:
        run = _run(item)
        is_long = _base_id(item) in rank
        runs[0 if is_long and run == 2 else run][0 if is_long else 1].append(item)
    ordered = []
    for long, others in runs.values():
        ordered += _spread(sorted(long, key=lambda item: rank[_base_id(item)]), others)
    assert len(ordered) == len(items)
    items[:] = ordered
