"""Replay by seeking a subscription to a time or a snapshot, and creating and listing snapshots
(a subscription may seek only to snapshots of its own topic)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from workloads.providers.base import QueueSpec, SnapshotInfo


def _project(resource: str) -> str:
    return resource.split("/")[1]


class SnapshotsMixin:
    def seek(self, spec: QueueSpec, *, to_time: datetime | None = None, to_snapshot: str | None = None) -> None:
        if (to_time is None) == (to_snapshot is None):
            raise ValueError("seek needs exactly one of to_time and to_snapshot")
        request: dict = {"subscription": spec.subscription}
        if to_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(to_time if to_time.tzinfo else to_time.replace(tzinfo=UTC))
            request["time"] = stamp
        else:
            request["snapshot"] = self._snapshot_path(spec, to_snapshot)
        self._admin(
            lambda: self._subscriber.seek(request=request, timeout=self._timeout, retry=None),
            what="seek",
            resource=spec.subscription,
        )

    def create_snapshot(self, spec: QueueSpec, name: str) -> SnapshotInfo:
        path = self._snapshot_path(spec, name)
        snapshot = self._admin(
            lambda: self._subscriber.create_snapshot(
                request={"name": path, "subscription": spec.subscription}, timeout=self._timeout, retry=None
            ),
            what="create a snapshot of",
            resource=spec.subscription,
        )
        expire = snapshot.expire_time
        return SnapshotInfo(name=snapshot.name, expire_time=expire if expire and expire.timestamp() > 0 else None)

    def list_snapshots(self, spec: QueueSpec) -> list[SnapshotInfo]:
        project = f"projects/{_project(spec.subscription)}"
        snapshots = self._admin(
            # Snapshots are listed per project; a subscription may seek to those of its topic only.
            lambda: list(
                self._subscriber.list_snapshots(request={"project": project}, timeout=self._timeout, retry=None)
            ),
            what="list the snapshots of",
            resource=project,
        )
        return sorted(
            (
                SnapshotInfo(
                    name=s.name, expire_time=s.expire_time if s.expire_time and s.expire_time.timestamp() > 0 else None
                )
                for s in snapshots
                if s.topic == spec.topic
            ),
            key=lambda info: info.name,
        )

    @staticmethod
    def _snapshot_path(spec: QueueSpec, name: str) -> str:
        return name if name.startswith("projects/") else f"projects/{_project(spec.subscription)}/snapshots/{name}"
