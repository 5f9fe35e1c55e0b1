"""Audit diffs down to the leaf that changed, list items matched by their natural key."""

from dashboards.diffs import FieldChange, readable_changes


def test_scalars_show_before_and_after():
    assert readable_changes({"max_instances": [4, 8], "description": ["", "Parses"]}) == [
        FieldChange("description", '""', "Parses"),
        FieldChange("max_instances", "4", "8"),
    ]


def test_list_items_are_matched_by_natural_key_not_position():
    before = [{"kind": "queue_age", "threshold_seconds": 120.0}, {"kind": "success_ratio", "target_percent": "99"}]
    after = [{"kind": "success_ratio", "target_percent": "99.5"}, {"kind": "queue_age", "threshold_seconds": 120.0}]
    assert readable_changes({"slos": [before, after]}) == [
        FieldChange("slos[success_ratio].target_percent", "99", "99.5"),
    ]


def test_added_and_removed_items_and_fields():
    changes = {
        "schedules": [[{"name": "nightly", "max_instances": 2}], [{"name": "weekend", "max_instances": 1}]],
        "timeout_seconds": [None, 30],
    }
    rows = readable_changes(changes)
    assert [(r.path, r.before, r.after, r.kind) for r in rows] == [
        ("schedules[nightly].max_instances", "2", "—", "removed"),
        ("schedules[nightly].name", "nightly", "—", "removed"),
        ("schedules[weekend].max_instances", "—", "1", "added"),
        ("schedules[weekend].name", "—", "weekend", "added"),
        ("timeout_seconds", "—", "30", "added"),
    ]


def test_lists_of_scalars_and_odd_shapes_stay_whole():
    assert readable_changes({"days_of_week": [[0, 1], [5, 6]], "odd": "x"}) == [
        FieldChange("days_of_week", "[0, 1]", "[5, 6]"),
        FieldChange("odd", "—", "x"),
    ]
    assert readable_changes({}) == readable_changes(None) == []
    assert readable_changes({"enabled": [True, False]}) == [FieldChange("enabled", "true", "false")]
