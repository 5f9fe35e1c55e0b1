import threading
import time

from workloads.models import WorkOutcome

from .conftest import document, running, wait_for


def test_a_handler_past_its_timeout_fails_the_attempt_and_its_thread_keeps_its_slot(local_setup):
    workload_class = local_setup.make_class(timeout_tier="custom", timeout_seconds=1, max_concurrency=2)
    lock = threading.Lock()
    state = {"active": 0, "peak": 0, "cancelled_seen": None}

    def handler(payload, context):
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        try:
            if payload["document_id"] == "doc-0" and context.attempt == 1:
                time.sleep(2.5)  # hangs past the 1 s tier and ignores cancellation
                state["cancelled_seen"] = context.cancelled.is_set()
                context.meter.add(records=99)  # too late: discarded
            else:
                time.sleep(0.2)
                context.meter.add(records=1)
        finally:
            with lock:
                state["active"] -= 1

    worker = local_setup.worker(workload_class, handler)
    local_setup.publish(workload_class, [document(0)])
    with running(worker):
        wait_for(lambda: local_setup.results(workload_class), lambda rows: len(rows) == 1)  # the timeout
        local_setup.publish(workload_class, [document(n) for n in range(1, 7)])
        wait_for(
            lambda: local_setup.results(workload_class, outcome=WorkOutcome.SUCCEEDED),
            lambda rows: len(rows) == 7,
            timeout=30,
        )
        wait_for(lambda: worker.strays, lambda strays: strays == 0, timeout=5)
    # The stray thread still counted: never more than two handler bodies at once.
    assert state["peak"] == 2
    assert state["cancelled_seen"] is True
    timed_out = local_setup.results(workload_class, outcome=WorkOutcome.TIMED_OUT)
    assert [(r.idempotency_key, r.attempts, r.error_type, r.records) for r in timed_out] == [
        ("acme:doc-0:1", 1, "HandlerTimeout", 0)
    ]
    [retried] = local_setup.results(workload_class, outcome=WorkOutcome.SUCCEEDED, idempotency_key="acme:doc-0:1")
    assert (retried.attempts, retried.records) == (2, 1)
