"""A handler module for tests that run the real `runworker` (WORKER_HANDLER_MODULES points here):
class `slow-jobs` takes SLOW_HANDLER_SECONDS per unit, so a test can stop a worker mid-work."""

import os
import time

from workloads.runtime import handler

SLUG = "slow-jobs"


@handler(SLUG)
def slow(payload: dict, context) -> dict:
    time.sleep(float(os.environ.get("SLOW_HANDLER_SECONDS", "0.3")))
    context.meter.add(records=1)
    return {"document_id": payload["document_id"]}
