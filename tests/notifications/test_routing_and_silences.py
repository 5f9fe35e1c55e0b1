"""Routes (first match wins, the default last, tickets held for business hours), silences,
acknowledgement, and the prune."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.notifications.helpers import T0, channel, default_route, make_slo, open_alert, resolve, sync
from workloads.errors import ApplicationError
from workloads.models import (
    AuditEvent,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    NotificationRoute,
    NotificationState,
    SloIncident,
)
from workloads.services.alert_incidents import (
    incident_acknowledge,
    next_business_time,
    silence_create,
    silence_end,
    silence_preview,
)
from workloads.services.notifications import notifications_deliver_due, notifications_prune
from workloads.services.pruning import prunes_run


def route(name, *channels, order=10, **matchers):
    r = NotificationRoute.objects.create(name=name, order=order, **matchers)
    r.channels.set(channels)
    return r


def test_the_first_matching_route_wins_and_the_default_catches_the_rest(db, receiver):
    payments, platform, fallback = (channel("webhook", receiver, name=n) for n in ("payments", "platform", "fallback"))
    default_route(fallback)
    route("payments pages", payments, order=1, owner_team="payments", severity="page")
    route("all of payments", platform, order=2, owner_team="payments")
    paying = make_slo("charge-cards", owner_team="payments")
    open_alert(paying, "page-1h-5m", "page", at=T0)
    other = make_slo("thumbnails", owner_team="media")
    open_alert(other, "ticket-3d-6h", "ticket", at=T0)
    sync(T0)
    sent = dict(Notification.objects.values_list("incident__slo__workload_class__slug", "channel__name"))
    assert sent == {"charge-cards": "payments", "thumbnails": "fallback"}


def test_without_any_matching_route_nothing_is_queued(db):
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    assert SloIncident.objects.count() == 1 and not Notification.objects.exists()


def test_a_severity_change_reaches_the_new_routes_channels_and_the_old_ones(db, receiver):
    pager, tickets = channel("pagerduty", receiver, name="pager"), channel("webhook", receiver, name="tickets")
    route("pages", pager, order=1, severity="page")
    default_route(tickets)
    slo = make_slo()
    ticket = open_alert(slo, "ticket-3d-6h", "ticket", at=T0)
    sync(T0)
    page = open_alert(slo, "page-1h-5m", "page", at=T0 + timedelta(minutes=5))
    sync(T0 + timedelta(minutes=5))
    resolve(page, at=T0 + timedelta(minutes=30))
    resolve(ticket, at=T0 + timedelta(minutes=30))
    sync(T0 + timedelta(minutes=30))
    rows = list(Notification.objects.order_by("sequence", "channel__name").values_list("event", "channel__name"))
    assert rows == [
        ("trigger", "tickets"),
        ("update", "pager"),
        ("update", "tickets"),
        ("resolve", "pager"),
        ("resolve", "tickets"),
    ]


def test_tickets_wait_for_business_hours_on_a_route_that_says_so(db, receiver):
    default_route(
        channel("webhook", receiver), hold_tickets_for_business_hours=True, business_hours_timezone="Europe/Berlin"
    )
    saturday_night = datetime(2026, 3, 7, 22, 0, tzinfo=UTC)
    open_alert(make_slo(), "ticket-3d-6h", "ticket", at=saturday_night)
    sync(saturday_night)
    held = Notification.objects.get()
    # Monday 09:00 in Berlin (UTC+1 in March) is 08:00 UTC.
    assert held.next_attempt_at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert "business hours" in held.state_reason
    notifications_deliver_due(now=saturday_night + timedelta(hours=1))
    assert not receiver.requests
    notifications_deliver_due(now=datetime(2026, 3, 9, 8, 0, tzinfo=UTC))
    assert len(receiver.wait_for(1)) == 1


def test_pages_are_never_held(db, receiver):
    default_route(channel("webhook", receiver), hold_tickets_for_business_hours=True)
    saturday_night = datetime(2026, 3, 7, 22, 0, tzinfo=UTC)
    open_alert(make_slo(), "page-1h-5m", "page", at=saturday_night)
    sync(saturday_night)
    assert Notification.objects.get().next_attempt_at == saturday_night


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        (datetime(2026, 3, 2, 7, 0, tzinfo=UTC), datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        (datetime(2026, 3, 6, 17, 0, tzinfo=UTC), datetime(2026, 3, 9, 9, 0, tzinfo=UTC)),
    ],
)
def test_next_business_time(moment, expected):
    assert next_business_time(moment, "UTC") == expected


def test_a_silence_keeps_matching_incidents_quiet_until_it_ends(db, receiver, operator):
    default_route(channel("webhook", receiver))
    billing, other = make_slo("billing-export"), make_slo("thumbnails")
    open_alert(billing, "page-1h-5m", "page", at=T0)
    sync(T0)
    expires = T0 + timedelta(hours=2)

    preview = silence_preview(matchers={"workload_class_slug": "billing-export"}, now=T0)
    assert [i.slo_id for i in preview] == [billing.pk]
    silence = silence_create(
        actor=operator,
        matchers={"workload_class_slug": "billing-export"},
        reason="known: deploy in progress",
        expires_at=expires,
        now=T0,
    )
    event = AuditEvent.objects.get(action="silence.create")
    assert event.actor == operator and event.extra["silenced_now"] == [SloIncident.objects.get(slo=billing).key]

    later = T0 + timedelta(minutes=10)
    open_alert(billing, "ticket-3d-6h", "ticket", at=later)
    open_alert(other, "page-1h-5m", "page", at=later)
    SloIncident.objects.filter(slo=billing).update(severity="ticket")  # force a change on the silenced SLO
    sync(later)
    silenced = Notification.objects.get(incident__slo=billing, event="update")
    assert silenced.state == NotificationState.SILENCED and "deploy in progress" in silenced.state_reason
    assert Notification.objects.get(incident__slo=other).state == NotificationState.PENDING

    silence_end(actor=operator, silence=silence, now=later + timedelta(minutes=1))
    assert AuditEvent.objects.filter(action="silence.end").count() == 1
    with pytest.raises(ApplicationError):
        silence_end(actor=operator, silence=silence, now=later + timedelta(minutes=2))


@pytest.mark.parametrize(
    ("matchers", "reason", "expires_in", "code"),
    [
        ({"owner_team": "payments"}, "", timedelta(hours=1), "reason_required"),
        ({"owner_team": "payments"}, "why", timedelta(hours=-1), "expiry_in_past"),
        ({"owner_team": "payments"}, "why", timedelta(days=31), "expiry_too_far"),
        ({}, "why", timedelta(hours=1), "matchers_required"),
    ],
)
def test_a_silence_needs_a_reason_a_future_expiry_and_a_matcher(db, operator, matchers, reason, expires_in, code):
    with pytest.raises(ApplicationError) as caught:
        silence_create(actor=operator, matchers=matchers, reason=reason, expires_at=T0 + expires_in, now=T0)
    assert caught.value.code == code and caught.value.status == 400


def test_acknowledge_is_recorded_audited_and_once(db, operator):
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    incident = SloIncident.objects.get()
    incident_acknowledge(actor=operator, incident=incident, note="on it", now=T0 + timedelta(minutes=3))
    incident.refresh_from_db()
    assert (incident.acknowledged_by, incident.acknowledged_at, incident.acknowledgement_note) == (
        operator,
        T0 + timedelta(minutes=3),
        "on it",
    )
    assert AuditEvent.objects.get(action="incident.acknowledge").extra == {"note": "on it"}
    with pytest.raises(ApplicationError, match="Already acknowledged"):
        incident_acknowledge(actor=operator, incident=incident, note="", now=T0 + timedelta(minutes=4))


def test_prune_deletes_old_notifications_and_their_attempts(db, receiver, settings):
    settings.NOTIFICATION_RETENTION_DAYS = 30
    default_route(channel("webhook", receiver))
    alert = open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    notifications_deliver_due(now=T0)
    resolve(alert, at=T0 + timedelta(minutes=5))
    sync(T0 + timedelta(minutes=5))
    assert NotificationDelivery.objects.count() == 1

    assert prunes_run(now=T0 + timedelta(days=29), batch_size=1)["notifications"] == {
        "deliveries": 0,
        "notifications": 0,
        "incidents": 0,
        "silences": 0,
    }
    removed = prunes_run(now=T0 + timedelta(days=31), batch_size=1)["notifications"]
    assert removed == {"deliveries": 1, "notifications": 2, "incidents": 1, "silences": 0}
    assert not Notification.objects.exists() and not NotificationDelivery.objects.exists()


def test_an_incident_a_silence_hid_notifies_once_the_silence_ends(db, receiver, operator):
    default_route(channel("webhook", receiver))
    slo = make_slo()
    silence = silence_create(
        actor=operator, matchers={"owner_team": "platform"}, reason="deploy", expires_at=T0 + timedelta(hours=1), now=T0
    )
    alert = open_alert(slo, "page-1h-5m", "page", at=T0)
    sync(T0)
    sync(T0 + timedelta(minutes=1))  # still silenced: nothing new
    assert list(Notification.objects.values_list("event", "state")) == [("trigger", "silenced")]

    silence_end(actor=operator, silence=silence, now=T0 + timedelta(minutes=2))
    sync(T0 + timedelta(minutes=3))
    sync(T0 + timedelta(minutes=4))  # heard now: no second opening
    resolve(alert, at=T0 + timedelta(minutes=5))
    sync(T0 + timedelta(minutes=5))
    notifications_deliver_due(now=T0 + timedelta(minutes=5))
    assert [r.json()["event"] for r in receiver.wait_for(2)] == ["trigger", "resolve"]


def test_a_silenced_incident_resolves_without_telling_anyone(db, receiver, operator):
    default_route(channel("webhook", receiver))
    silence_create(
        actor=operator, matchers={"owner_team": "platform"}, reason="deploy", expires_at=T0 + timedelta(hours=1), now=T0
    )
    alert = open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    resolve(alert, at=T0 + timedelta(minutes=5))
    sync(T0 + timedelta(minutes=5))
    assert list(Notification.objects.values_list("event", "state")) == [("trigger", "silenced")]
    assert SloIncident.objects.get().resolved_at is not None


def test_prune_keeps_what_is_still_to_be_sent_but_not_for_a_disabled_channel(db, receiver):
    hook = channel("webhook", receiver)
    default_route(hook)
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)  # pending: never delivered
    notifications_prune(now=T0 + timedelta(days=60), batch_size=100)
    assert Notification.objects.filter(state=NotificationState.PENDING).count() == 1
    NotificationChannel.objects.filter(pk=hook.pk).update(enabled=False)
    notifications_prune(now=T0 + timedelta(days=60), batch_size=100)
    assert not Notification.objects.exists()
