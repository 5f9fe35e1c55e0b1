"""Pub/Sub-style resource names and the errors the local provider raises about them."""

from workloads.providers.base import ProviderError


def short_id(name: str) -> str:
    """`projects/P/subscriptions/S` -> `S`."""
    return name.rsplit("/", 1)[-1]


def project_id(name: str) -> str:
    """`projects/P/...` -> `P` (empty when the name has no project part)."""
    parts = name.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "projects" else ""


def snapshot_name(subscription: str, name: str) -> str:
    """A snapshot's full name from a short id (or a full name, returned as is)."""
    if name.startswith("projects/"):
        return name
    return f"projects/{project_id(subscription)}/snapshots/{name}"


def not_found(kind: str, name: str, hint: str) -> ProviderError:
    return ProviderError(
        f"The local {kind} {name} does not exist: {hint}", permanent=True, code="NOT_FOUND", resource=name
    )


def invalid(message: str, resource: str = "") -> ProviderError:
    return ProviderError(message, permanent=True, code="INVALID_ARGUMENT", resource=resource)


def topic_in_use(topic: str, subscriptions: list[str]) -> ProviderError:
    """A topic is deleted only once no subscription is attached: deleting it would cut them off."""
    return ProviderError(
        f"The topic {topic} still has subscriptions attached ({', '.join(subscriptions)}): delete or move "
        "them first; deleting the topic would cut them off.",
        permanent=True,
        code="FAILED_PRECONDITION",
        resource=topic,
    )
