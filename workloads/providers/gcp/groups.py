"""Which Google groups a person belongs to, directly or through nested groups, asked of the Cloud
Identity Groups API with the service's own credentials (Application Default Credentials).

Behind Identity-Aware Proxy the signed header carries no groups, so a `google-group:` role rule
(controlplane/role_rules.py) is answered here. One call answers every rule of a person:
`groups.memberships.searchTransitiveGroups` (GET /v1/groups/-/memberships:searchTransitiveGroups)
lists all the groups the person is in, transitively; `checkTransitiveMembership` would need one
call per rule plus a `groups:lookup` to turn each group's address into its id. Both are available
only to Google Workspace Enterprise and Cloud Identity Premium accounts (others get 403), and the
service account needs read access to groups (docs/operations.md, "Google groups").

Answers are cached per person for a configurable time. Failures are not cached, and they are
raised as GroupLookupFailed: the caller fails closed (the rule does not match).
"""

from __future__ import annotations

import threading
import time

import requests
from google.auth import default as google_auth_default
from google.auth import exceptions as google_auth_exceptions
from google.auth.transport.requests import AuthorizedSession

SCOPES = ("https://www.googleapis.com/auth/cloud-identity.groups.readonly",)
# The label every Google group (a "discussion forum") carries; the query must name a label.
GROUP_LABEL = "cloudidentity.googleapis.com/groups.discussion_forum"
PAGE_SIZE = 1000  # the most the method returns per page
# A person in more groups than this is cut off rather than making a sign-in wait on many calls.
MAX_PAGES = 5


class GroupLookupFailed(Exception):
    """The groups could not be read; the message says why, for the log and the audit event."""


class GoogleGroups:
    def __init__(self, *, api_url: str, cache_seconds: float, timeout_seconds: float, credentials=None):
        self.api_url = api_url.rstrip("/")
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self._credentials = credentials
        self._session: AuthorizedSession | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def groups_of(self, email: str) -> frozenset[str]:
        """The addresses (lower case) of every group `email` is a member of, directly or not."""
        key = email.strip().lower()
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        groups = self._fetch(key)
        with self._lock:
            self._cache[key] = (time.monotonic() + self.cache_seconds, groups)
        return groups

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def _authorized_session(self) -> AuthorizedSession:
        with self._lock:
            if self._session is None:
                credentials = self._credentials
                if credentials is None:
                    try:
                        credentials, _ = google_auth_default(scopes=SCOPES)
                    except google_auth_exceptions.DefaultCredentialsError as exc:
                        raise GroupLookupFailed(f"no Google credentials to read groups with: {exc}") from None
                self._session = AuthorizedSession(credentials, refresh_timeout=self.timeout_seconds)
            return self._session

    def _fetch(self, email: str) -> frozenset[str]:
        if not email or "'" in email or "\\" in email:
            # The address goes into a CEL string literal; IAP never sends such an address.
            raise GroupLookupFailed(f"cannot look up groups of {email!r}")
        session = self._authorized_session()
        url = f"{self.api_url}/v1/groups/-/memberships:searchTransitiveGroups"
        params = {"query": f"member_key_id == '{email}' && '{GROUP_LABEL}' in labels", "pageSize": PAGE_SIZE}
        groups: set[str] = set()
        for _ in range(MAX_PAGES):
            try:
                response = session.get(url, params=params, timeout=self.timeout_seconds)
            except google_auth_exceptions.RefreshError as exc:
                raise GroupLookupFailed(f"the service's Google credentials could not get a token: {exc}") from None
            except (requests.RequestException, google_auth_exceptions.GoogleAuthError) as exc:
                raise GroupLookupFailed(f"the Cloud Identity Groups API could not be reached: {exc}") from None
            if response.status_code != 200:
                raise GroupLookupFailed(
                    f"the Cloud Identity Groups API answered {response.status_code}: {_error_message(response)}"
                )
            try:
                body = response.json()
                for relation in body.get("memberships") or ():
                    group = (relation.get("groupKey") or {}).get("id")
                    if group:
                        groups.add(str(group).lower())
                token = body.get("nextPageToken")
            except (ValueError, AttributeError, TypeError) as exc:
                raise GroupLookupFailed(f"the Cloud Identity Groups API sent an unreadable answer: {exc}") from None
            if not token:
                break
            params["pageToken"] = token
        return frozenset(groups)


def _error_message(response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or response.reason


_clients: dict[tuple, GoogleGroups] = {}
_clients_lock = threading.Lock()


def google_groups(*, api_url: str, cache_seconds: float, timeout_seconds: float) -> GoogleGroups:
    """One client (and cache) per configuration, for the life of the process."""
    key = (api_url, cache_seconds, timeout_seconds)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = GoogleGroups(api_url=api_url, cache_seconds=cache_seconds, timeout_seconds=timeout_seconds)
        return _clients[key]


def google_groups_forget() -> None:
    """Drop every client and cached answer (tests, and a change of credentials)."""
    with _clients_lock:
        _clients.clear()
