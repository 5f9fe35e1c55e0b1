"""The Celery app: beat ticks and action tasks. Tasks are thin wrappers around services."""

import os

from celery import Celery

from controlplane import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.base")

broker.register()  # the embedded broker (filesystem://) safe for several processes
app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
