"""A replay on Google's Pub/Sub emulator overlaps a chunk's publish with the database: the previous
chunk's step records are written while the chunk's messages are in flight (the publish waits on
its own thread), and each message is still published once. The crash cases (records held back
and lost, rows marked or not) are in test_deadletters_emulator.py."""

import threading
import uuid

import pytest

from tests.workloads.deadletter_helpers import event, kit_dead_letter, make_class
from tests.workloads.test_deadletters_emulator import _drain, _replay, _sync_until
from workloads.models import Action, ActionState, DeadLetter, DeadLetterStatus
from workloads.providers import set_providers
from workloads.providers.base import ATTR_REPLAY_OF, Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.pubsub import PubSubQueue
from workloads.services import actions as engine
from workloads.services import replay_run

pytestmark = pytest.mark.emulator


@pytest.fixture
def queue(db, pubsub_clients):
    publisher, subscriber, ordered_publisher = pubsub_clients
    queue = PubSubQueue(
        publisher=publisher,
        ordered_publisher=ordered_publisher,
        subscriber=subscriber,
        backoff=Backoff(initial=0.05, maximum=0.5, deadline=10.0),
    )
    set_providers(Providers(queue=queue, pools=None, metrics=None, name="gcp"))
    yield queue
    set_providers(None)


def test_the_previous_chunks_records_are_written_while_a_chunk_is_in_flight(queue, settings, monkeypatch):
    settings.REPLAY_CHUNK_SIZE = 2
    docs = make_class(queue, f"dl-{uuid.uuid4().hex[:10]}")
    for n in range(5):
        kit_dead_letter(queue, docs, event(n))
    _sync_until(5)
    action = _replay(docs, error_signature="sig-unavailable")

    written = threading.Event()
    seen = []  # per publish: its thread, and the progress the previous chunk's records had made by its end
    real_write = replay_run.write_held_records
    real_republish = queue.republish

    def write_held_records():
        real_write()
        written.set()

    def republish(spec, messages, **kwargs):
        # In flight until the records are written: were the two run one after the other, this
        # would wait its 10 s out and find nothing written.
        ids = real_republish(spec, messages, **kwargs)
        records_written = written.wait(timeout=10)
        written.clear()
        seen.append((threading.current_thread() is threading.main_thread(), records_written))
        return ids

    monkeypatch.setattr(replay_run, "write_held_records", write_held_records)
    monkeypatch.setattr(queue, "republish", republish)
    done = engine.action_run(action_id=action.pk, sleep=lambda s: None)

    assert done.state == ActionState.SUCCEEDED and (done.progress_done, done.progress_total) == (5, 5)
    assert seen == [(False, True)] * 3  # three chunks, each published off the main thread meanwhile
    assert all(step.state == "done" and step.result["message_id"] for step in done.steps.all())
    published = [m.attributes[ATTR_REPLAY_OF] for m in _drain(queue, docs, 5)]
    assert sorted(published) == sorted(DeadLetter.objects.values_list("message_id", flat=True))
    assert DeadLetter.objects.filter(status=DeadLetterStatus.REPLAYED, replay_action=done).count() == 5
    assert Action.objects.get(pk=done.pk).progress_done == 5
