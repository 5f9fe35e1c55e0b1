"""A provider error reaches API clients as JSON that says what failed, never as a 500 page."""

from rest_framework.test import APIRequestFactory

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.api.errors import PROVIDER_RETRY_AFTER_SECONDS, exception_handler
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import queue_spec

EVENT = {"tenant_id": "acme", "document_id": "doc-1", "revision": 1}


def test_ingesting_into_a_class_whose_queue_does_not_exist_says_so_and_keeps_nothing(make_user, token_client):
    workload_class = WorkloadClassFactory(slug="not-provisioned")  # created, never provisioned
    client, _token = token_client(make_user("producer", Role.OPERATOR), scopes=["ingest:not-provisioned"])
    url = "/api/v1/classes/not-provisioned/events"

    response = client.post(url, EVENT, format="json")

    # Not a 502: the producer did nothing wrong and its retry succeeds once the class is provisioned.
    assert response.status_code == 503 and response["Retry-After"] == "30"
    body = response.json()
    assert body["type"] == "resources_not_ready" and body["provisioning_action"] is None
    assert f"{workload_class.topic} does not exist" in body["detail"]
    assert not IdempotencyRecord.objects.exists()  # a retry after provisioning is not a "duplicate"

    get_providers().queue.ensure_resources(queue_spec(workload_class))
    retried = client.post(url, EVENT, format="json")
    assert retried.status_code == 202 and retried.json()["status"] == "accepted"


def test_a_transient_provider_error_asks_the_client_to_retry_later():
    request = APIRequestFactory().post("/api/v1/classes/x/events")
    error = ProviderError("Pub/Sub is unavailable", permanent=False, code="UNAVAILABLE", resource="topics/x")

    response = exception_handler(error, {"request": request})

    assert response.status_code == 503
    assert response["Retry-After"] == str(PROVIDER_RETRY_AFTER_SECONDS)
    assert response.data == {
        "type": "provider_error",
        "detail": "Pub/Sub is unavailable",
        "code": "UNAVAILABLE",
        "resource": "topics/x",
        "permanent": False,
    }
