"""Environments for the screens: the switcher's list on every full page, kept in the cache so a
page does not pay a query for it (Environment.save and delete drop the cached list)."""

from django.core.cache import cache

from workloads.models import Environment
from workloads.models.environments import ENVIRONMENT_LIST_CACHE_KEY, ENVIRONMENT_SLUG_VALIDATOR


def environment_choices(environment_ids: set[int] | None = None) -> list[tuple[str, str]]:
    """(slug, name) of every environment (of those in `environment_ids` when given: one query,
    uncached), by slug."""
    if environment_ids is not None:
        rows = Environment.objects.filter(pk__in=environment_ids).order_by("slug")
        return list(rows.values_list("slug", "name")) if environment_ids else []
    choices = cache.get(ENVIRONMENT_LIST_CACHE_KEY)
    if choices is None:
        choices = list(Environment.objects.order_by("slug").values_list("slug", "name"))
        cache.set(ENVIRONMENT_LIST_CACHE_KEY, choices, 300)
    return choices


def environment_by_slug(slug: str) -> Environment | None:
    """None for an unknown slug, and without a query for one no environment can have (a NUL byte
    in a query parameter would otherwise reach the database)."""
    if not slug or ENVIRONMENT_SLUG_VALIDATOR.regex.fullmatch(slug) is None:
        return None
    return Environment.objects.filter(slug=slug).first()
