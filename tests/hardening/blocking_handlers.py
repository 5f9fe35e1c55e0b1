"""A handler module for the killed-worker test (WORKER_HANDLER_MODULES points here): class
`blocking-jobs` says when it starts a unit, then, in a worker started with BLOCK_HANDLER=1,
blocks until the process is killed."""

import os
import time

from workloads.runtime import handler

SLUG = "blocking-jobs"


@handler(SLUG)
def block_when_told(payload: dict, context) -> dict:
    print(f"handling {payload['document_id']} in pid {os.getpid()}", flush=True)
    if os.environ.get("BLOCK_HANDLER") == "1":
        time.sleep(600)
    context.meter.add(records=1)
    return {"document_id": payload["document_id"]}
