"""Slugs shared by the on-call screen tests (the `oncall` fixture lives in conftest.py)."""

DL_SLUG = "document-processing"
DEFERRABLE_SLUG = "batch-enrichment"
