"""Labels on every cloud resource a class owns (its topics and subscriptions), so a billing export
can split Pub/Sub cost by class, team and tier.

Google's label rules: keys and values at most 63 characters of lowercase letters, digits, `_` and
`-` (keys start with a letter). Class slugs, team names and tiers are free text here, so values are
sanitized: lowercased, every other character replaced by `-`, cut to 63.
"""

from __future__ import annotations

import re

MANAGED_BY = "controlplane"
MAX_LABEL_CHARS = 63
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]")


def label_value(text: str) -> str:
    return _NOT_ALLOWED.sub("-", str(text).strip().lower())[:MAX_LABEL_CHARS]


def class_labels(*, slug: str, team: str, tier: str) -> tuple[tuple[str, str], ...]:
    """The labels of a class's resources, as sorted (key, value) pairs (specs are frozen)."""
    labels = {
        "class": label_value(slug),
        "team": label_value(team),
        "tier": label_value(tier),
        "managed-by": MANAGED_BY,
    }
    return tuple(sorted(labels.items()))
