"""Record deployments of a class's worker code, audited: from CI through the API, from the class
page, and from the pool's revision changing (seen by the scaling controller's read of the pool)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from workloads.batch_delete import delete_in_batches
from workloads.models import Deployment, DeploymentSource, PoolControl, WorkloadClass
from workloads.services.audit import audit_event_record

COMMIT_PATTERN = re.compile(r"^[0-9a-fA-F]{7,64}$")
# A CI clock a little ahead of ours is fine; a deployment days in the future is a mistake.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_LINK = URLValidator(schemes=["http", "https"])
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _checked(*, version: str, commit: str, deployed_by: str, link: str, revision: str, deployed_at, now) -> None:
    errors: dict[str, str] = {}
    if not (version or commit or revision):
        errors["version"] = "Give a version or a commit (or both)."
    for name, value, limit in (("version", version, 100), ("deployed_by", deployed_by, 150), ("link", link, 500)):
        if len(value) > limit:
            errors[name] = f"At most {limit} characters."
        elif _CONTROL.search(value):
            # PostgreSQL refuses NUL in text; other control characters would garble markers.
            errors[name] = "No control characters."
    if commit and not COMMIT_PATTERN.match(commit):
        errors["commit"] = "A commit is 7 to 64 hexadecimal characters."
    if link and "link" not in errors:
        try:
            _LINK(link)
        except ValidationError:
            errors["link"] = "An http:// or https:// address."
    if deployed_at > now + MAX_CLOCK_SKEW:
        errors["deployed_at"] = "A deployment cannot be in the future."
    if errors:
        raise ValidationError(errors)


def deployment_record(
    *,
    workload_class: WorkloadClass,
    actor,
    source: str,
    now: datetime,
    version: str = "",
    commit: str = "",
    deployed_by: str = "",
    link: str = "",
    revision: str = "",
    deployed_at: datetime | None = None,
) -> Deployment:
    """Record one deployment (`deployed_at` defaults to now) with its audit event."""
    version, commit, deployed_by, link = version.strip(), commit.strip().lower(), deployed_by.strip(), link.strip()
    deployed_at = deployed_at or now
    _checked(
        version=version,
        commit=commit,
        deployed_by=deployed_by,
        link=link,
        revision=revision,
        deployed_at=deployed_at,
        now=now,
    )
    with transaction.atomic():
        deployment = Deployment.objects.create(
            workload_class=workload_class,
            deployed_at=deployed_at,
            source=source,
            version=version,
            commit=commit,
            deployed_by=deployed_by or (actor.get_username() if actor is not None else ""),
            link=link,
            revision=revision[:300],
            recorded_by=actor if actor is not None and actor.pk else None,
            recorded_by_label=actor.get_username() if actor is not None else "system",
        )
        audit_event_record(
            actor=actor,
            action="deployment.record",
            target=deployment,
            target_repr=f"{workload_class.slug} {deployment.label}",
            workload_class_slug=workload_class.slug,
            extra={
                "source": source,
                "version": version,
                "commit": commit,
                "deployed_by": deployment.deployed_by,
                "link": link,
                "revision": deployment.revision,
                "deployed_at": deployed_at.isoformat(),
            },
        )
    return deployment


def deployment_from_revision(*, control: PoolControl, workload_class: WorkloadClass, revision: str, now: datetime):
    """The scaling controller read the pool: when its revision differs from the one it read last,
    record a deployment nobody announced. The first revision ever read is only remembered."""
    if not revision or revision == control.last_revision:
        return None
    previous = control.last_revision
    PoolControl.objects.filter(pk=control.pk).update(last_revision=revision[:300])
    control.last_revision = revision[:300]
    if not previous:
        return None
    return deployment_record(
        workload_class=workload_class, actor=None, source=DeploymentSource.REVISION, now=now, revision=revision
    )


def deployments_prune(*, now: datetime, batch_size: int) -> int:
    """Delete deployments older than DEPLOYMENT_RETENTION_DAYS (their audit events stay)."""
    old = Deployment.objects.filter(deployed_at__lt=now - timedelta(days=settings.DEPLOYMENT_RETENTION_DAYS))
    return delete_in_batches(old, batch_size=batch_size)
