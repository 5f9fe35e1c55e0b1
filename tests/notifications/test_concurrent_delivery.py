"""Two delivery workers at once (two threads, two PostgreSQL connections): every notification is
sent exactly once, because each takes its row under FOR UPDATE SKIP LOCKED and marks it sent in the
same transaction."""

import threading
from datetime import timedelta

from django.db import connection

from tests.notifications.helpers import T0, channel, default_route, make_slo, open_alert, sync
from tests.notifications.receiver import Reply
from workloads.models import Notification, NotificationState
from workloads.services.notifications import notifications_deliver_due


def test_two_workers_never_send_the_same_notification(transactional_db, receiver):
    # Each answer takes a moment, so both workers are sending at the same time.
    receiver.default = Reply(200, "ok", delay=0.05)
    default_route(channel("webhook", receiver))
    for n in range(12):
        open_alert(make_slo(f"class-{n:02d}"), "page-1h-5m", "page", at=T0)
    sync(T0)
    assert Notification.objects.count() == 12

    errors = []

    def worker():
        try:
            notifications_deliver_due(now=T0 + timedelta(seconds=1))
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    keys = [r.json()["incident"]["key"] for r in receiver.requests]
    assert len(keys) == 12 and len(set(keys)) == 12
    assert set(Notification.objects.values_list("state", flat=True)) == {NotificationState.SENT}
    assert all(n.deliveries.count() == 1 for n in Notification.objects.all())
