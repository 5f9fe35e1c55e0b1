"""Template context every page shares: the main navigation for the user's role, the active
incident and the failing notification channels for the banners."""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from controlplane.roles import Role, readable_environment_ids, user_role
from dashboards.rendering import selected_environment
from workloads.selectors import incidents
from workloads.selectors import notifications as notification_selectors
from workloads.selectors.deadletters import dead_letters_needing_attention
from workloads.selectors.environments import environment_choices
from workloads.selectors.users import user_time_display


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    role: Role
    also_current_for: tuple[str, ...] = ()  # pages that belong to this section


# Screens of later issues appear here by themselves once their URL names exist.
NAV_ITEMS = (
    NavItem("Fleet", "dashboards:overview", Role.VIEWER, ("dashboards:class-detail",)),
    NavItem(
        "Dead letters",
        "dashboards:dead-letters",
        Role.VIEWER,
        (
            "dashboards:dead-letter-messages",
            "dashboards:dead-letter-detail",
            "dashboards:dead-letter-replay",
            "dashboards:dead-letter-discard",
            "dashboards:dead-letter-edit-replay",
            "dashboards:triage-rules",
            "dashboards:triage-rule-new",
            "dashboards:triage-rule-edit",
        ),
    ),
    NavItem(
        "Alerts",
        "dashboards:alert-incidents",
        Role.VIEWER,
        (
            "dashboards:alert-silences",
            "dashboards:alert-channels",
            "dashboards:alert-routes",
            "dashboards:alert-demo-receiver",
        ),
    ),
    NavItem("Incidents", "dashboards:incidents", Role.VIEWER),
    NavItem("Schedules", "dashboards:schedules", Role.VIEWER),
    NavItem("Cost", "dashboards:cost", Role.VIEWER),
    NavItem("Compare", "dashboards:compare", Role.VIEWER),
    NavItem("Migrations", "dashboards:migrations", Role.VIEWER, ("dashboards:migration-detail",)),
    NavItem("Actions", "dashboards:actions", Role.VIEWER, ("dashboards:action-detail",)),
    NavItem("Audit", "dashboards:audit", Role.VIEWER),
    NavItem("Users", "dashboards:users", Role.ADMIN, ("dashboards:user-detail",)),
    NavItem("API docs", "api-docs", Role.VIEWER),
    NavItem("Admin", "admin:index", Role.ADMIN),
)


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    current: bool
    count: int | None = None  # a number that needs someone, next to the label ("Dead letters 251")
    count_label: str = ""


def _dead_letter_count(_request) -> tuple[int, str]:
    total = dead_letters_needing_attention()
    return total, f"{total} dead letter{'' if total == 1 else 's'} need{'s' if total == 1 else ''} attention"


# Counts some sections show in the navigation, read once per full page (the nav is lazy).
NAV_COUNTS = {"dashboards:dead-letters": _dead_letter_count}


# The screens someone whose only roles are environment overrides reads (role_required's `narrowed`).
NARROWED_SCREENS = {
    "dashboards:overview",
    "dashboards:dead-letters",
    "dashboards:alert-incidents",
    "dashboards:incidents",
    "dashboards:cost",
    "dashboards:actions",
    # These four do not follow the switcher: they show every environment where the person has a role.
    "dashboards:schedules",
    "dashboards:compare",
    "dashboards:migrations",
    "dashboards:audit",
}


def nav_links(request) -> list[NavLink]:
    user = getattr(request, "user", None)
    role = user_role(user)
    only_overrides = role < Role.VIEWER and bool(readable_environment_ids(user))
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match else ""
    links = []
    for item in NAV_ITEMS:
        if role < item.role and not (only_overrides and item.url_name in NARROWED_SCREENS):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue
        current = view_name == item.url_name or view_name in item.also_current_for
        count, count_label = NAV_COUNTS[item.url_name](request) if item.url_name in NAV_COUNTS else (None, "")
        links.append(NavLink(item.label, url, current, count, count_label))
    return links


def navigation(request):
    return {"nav_links": SimpleLazyObject(lambda: nav_links(request))}


def incident(request):
    # Lazy: only full pages render the banner, so htmx partials never pay for the query.
    return {"active_incident": SimpleLazyObject(incidents.active_incident)}


def failing_channels(request):
    # Lazy like the incident banner: a notification channel failing for 15 minutes is a banner.
    return {"failing_channels": SimpleLazyObject(lambda: notification_selectors.failing_channels(now=timezone.now()))}


def time_display(request):
    # "utc" or "local", on <html data-time-display> for static/js/app.js; lazy, as partials never use it.
    return {"time_display": SimpleLazyObject(lambda: user_time_display(getattr(request, "user", None)))}


@dataclass(frozen=True)
class EnvironmentSwitch:
    choices: list[tuple[str, str]]  # (slug, name) of the environments the person may pick
    offers_all: bool  # "all": only a role of one's own reads every environment at once

    @property
    def shown(self) -> bool:
        # With a role of one's own, a choice of one is no choice; with overrides only, it says
        # which environment the screens show.
        return len(self.choices) > 1 if self.offers_all else bool(self.choices)


def environment_switch(user) -> EnvironmentSwitch:
    """Every environment (cached, no query per page) for a role of one's own; for someone whose
    only roles are environment overrides, the environments where they have one (one query)."""
    if user_role(user) >= Role.VIEWER:
        return EnvironmentSwitch(environment_choices(), offers_all=True)
    return EnvironmentSwitch(environment_choices(readable_environment_ids(user)), offers_all=False)


def environments(request):
    """The environment switcher (environment_switch) and the one environment the screens are
    narrowed to (remembered in the session)."""
    user = getattr(request, "user", None)
    return {
        "environment_switch": SimpleLazyObject(lambda: environment_switch(user)),
        "selected_environment": SimpleLazyObject(lambda: selected_environment(request)),
    }
