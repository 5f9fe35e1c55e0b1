import pytest
from tests.dashboards.conftest import HX
from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.models import WorkloadClass

def test_smoke(ui_client, operator, demo_fleet):
    wc = WorkloadClass.objects.get(slug="document-processing")
    rows = [dead_letter_row(wc) for _ in range(3)] + [dead_letter_row(wc, error_signature="sig-b", error_type="KeyError", error_message="'x'")]
    c = ui_client(operator)
    for url in ["/dead-letters/", "/dead-letters/messages/?workload_class=document-processing&signature=sig-unavailable", f"/dead-letters/{rows[0].pk}/", "/dead-letters/rules/", "/dead-letters/rules/new/"]:
        r = c.get(url)
        assert r.status_code == 200, (url, r.content[:3000])
        open("/tmp/ui3/" + url.strip("/").replace("/", "_").split("?")[0] + ".html", "wb").write(r.content)
    r = c.post("/dead-letters/replay/", {"workload_class": "document-processing", "signature": "sig-unavailable", "status": "open", "ids": [rows[0].pk, rows[1].pk], "step": "review"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    open("/tmp/ui3/replay_review.html", "wb").write(r.content)
    r = c.post("/dead-letters/replay/", {"workload_class": "document-processing", "signature": "sig-unavailable", "status": "open", "all_matching": "1", "step": "dry_run", "velocity": "5"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    open("/tmp/ui3/replay_dry.html", "wb").write(r.content)
    r = c.post("/dead-letters/replay/", {"workload_class": "document-processing", "signature": "sig-unavailable", "status": "open", "all_matching": "1", "step": "confirm", "velocity": "5"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    open("/tmp/ui3/replay_started.html", "wb").write(r.content)
    r = c.post("/dead-letters/discard/", {"workload_class": "document-processing", "signature": "sig-b", "status": "open", "all_matching": "1", "step": "review"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    r = c.post("/dead-letters/discard/", {"workload_class": "document-processing", "signature": "sig-b", "status": "open", "all_matching": "1", "step": "confirm"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    open("/tmp/ui3/discarded.html", "wb").write(r.content)
    r = c.post(f"/dead-letters/{rows[2].pk}/edit-and-replay/", {"payload": '{"tenant_id": "acme", "document_id": "d", "revision": 0}'}, headers=HX)
    assert r.status_code == 400, r.content.decode()
    open("/tmp/ui3/edit_bad.html", "wb").write(r.content)


def test_smoke_pool(ui_client, operator, viewer, demo_fleet):
    from tests.workloads.pools import run_pending
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec
    wc = WorkloadClass.objects.get(slug="batch-enrichment")
    get_providers().pools.ensure(pool_spec(wc), initial_instances=3)
    c = ui_client(operator)
    r = c.get("/classes/batch-enrichment/")
    assert r.status_code == 200
    open("/tmp/ui3/class.html", "wb").write(r.content)
    r = c.post("/classes/batch-enrichment/pause/", {"reason": "x", "expires_in_minutes": "60"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    open("/tmp/ui3/paused.html", "wb").write(r.content)
    run_pending()
    r = c.get("/classes/batch-enrichment/pool/", headers=HX)
    open("/tmp/ui3/paused2.html", "wb").write(r.content)
    r = c.post("/classes/batch-enrichment/resume/", {}, headers=HX)
    assert r.status_code == 200
    r = c.post("/classes/batch-enrichment/seek/", {"to_time": "2026-01-01T10:00"}, headers=HX)
    assert r.status_code == 200, r.content
    open("/tmp/ui3/seek.html", "wb").write(r.content)
    r = c.post("/classes/batch-enrichment/snapshot/", {"name": ""}, headers=HX)
    assert r.status_code == 200, r.content
    r = ui_client(viewer).get("/classes/batch-enrichment/")
    open("/tmp/ui3/class_viewer.html", "wb").write(r.content)


def test_smoke_incidents(ui_client, operator, viewer, demo_fleet):
    from tests.workloads.pools import run_pending
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec
    for wc in WorkloadClass.objects.all():
        get_providers().pools.ensure(pool_spec(wc), initial_instances=3)
    c = ui_client(operator)
    for url in ["/incidents/", "/compare/", "/schedules/?workload_class=document-processing", "/"]:
        r = c.get(url)
        assert r.status_code == 200, (url, r.content.decode()[:3000])
        open("/tmp/ui3/" + (url.strip("/").split("?")[0] or "overview").replace("/", "_") + ".html", "wb").write(r.content)
    r = c.post("/incidents/enter/", {"reason": "db failover", "expires_in_minutes": "240"}, headers=HX)
    assert r.status_code == 200, r.content.decode()
    open("/tmp/ui3/enter_preview.html", "wb").write(r.content)
    r = c.post("/incidents/enter/", {"reason": "db failover", "expires_in_minutes": "240", "step": "confirm"}, headers=HX)
    assert r.status_code == 200 and r["HX-Redirect"] == "/incidents/", r
    r = c.get("/incidents/")
    open("/tmp/ui3/incident_active.html", "wb").write(r.content)
    run_pending()
    r = c.get("/incidents/", headers=HX)
    open("/tmp/ui3/incident_active_part.html", "wb").write(r.content)
    r = c.get("/")
    open("/tmp/ui3/overview_paused.html", "wb").write(r.content)
    r = c.post("/incidents/exit/", {}, headers=HX)
    run_pending()
    r = c.get("/incidents/")
    open("/tmp/ui3/incident_after.html", "wb").write(r.content)
