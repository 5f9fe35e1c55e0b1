"""The demo's legacy workload: a plain Celery app, as a team would run it before migrating.

It knows nothing of the control plane (no Django): `make run` starts it as its own Procfile line
(`legacy: celery -A demo.legacy worker -E ...`), the control plane sends the events of a
class whose runtime is `celery` to its task, and `manage.py observe_celery` watches its task events.
It reads the same broker variables as the control plane's settings (RUNTIME_CELERY_BROKER_URL,
VAR_DIR), so both ends meet on the same broker.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from celery import Celery

from controlplane import broker

TASK_NAME = "legacy.process_document"
broker.register()  # the embedded broker's safe filesystem transport

app = Celery("legacy", set_as_current=False)
_url = os.environ.get("RUNTIME_CELERY_BROKER_URL") or os.environ.get("CELERY_BROKER_URL") or "filesystem://"
# What `celery -b URL` does: Celery lets CELERY_BROKER_URL win over any configured URL.
os.environ["CELERY_BROKER_URL"] = _url
app.conf.broker_url = _url
if _url.startswith("filesystem://"):
    _folder = Path(os.environ.get("VAR_DIR") or "var") / "runtime-celery"
    app.conf.broker_transport_options = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "processed_folder": str(_folder / "processed"),
        "control_folder": str(_folder / "control"),
        "store_processed": False,
    }
app.conf.update(
    worker_send_task_events=True,
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
# The legacy stack's character: slower per document and flakier than the worker-pool version.
FAILURE_RATE = float(os.environ.get("DEMO_LEGACY_FAILURE_RATE", "0.06"))
WORK_SECONDS = float(os.environ.get("DEMO_LEGACY_WORK_SECONDS", "0.4"))


@app.task(name=TASK_NAME)
def process_document(payload: dict, attributes: dict | None = None) -> str:
    if payload.get("fail"):
        raise ValueError("the payload asked to fail")
    time.sleep(float(payload.get("work_seconds", WORK_SECONDS * random.uniform(0.5, 1.5))))
    if "fail" not in payload and random.random() < FAILURE_RATE:
        raise RuntimeError("legacy worker: the document converter crashed")
    return "ok"
