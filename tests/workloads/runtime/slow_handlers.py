"""A handler module for tests that run the real `runworker` (WORKER_HANDLER_MODULES points here):
class `slow-jobs` takes SLOW_HANDLER_SECONDS per unit (none for a payload whose note is "fast"), so
a test can stop a worker mid-work. It prints a line as each unit starts."""

import os
import sys
import time

from workloads.runtime import handler

SLUG = "slow-jobs"


@handler(SLUG)
def slow(payload: dict, context) -> dict:
    sys.stdout.write(f"slow handler started {payload['document_id']}\n")  # one write: threads print at once
    sys.stdout.flush()
    if payload.get("note") != "fast":
        time.sleep(float(os.environ.get("SLOW_HANDLER_SECONDS", "0.3")))
    context.meter.add(records=1)
    return {"document_id": payload["document_id"]}
