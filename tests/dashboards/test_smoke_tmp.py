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
