import random

import pytest

from tests.workloads.telemetry_doubles import lognormal_latencies
from workloads.domain import histogram
from workloads.domain.histogram import BOUNDS, BUCKETS


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, round(len(ordered) * q / 100))  # nearest-rank
    return ordered[rank - 1]


def test_it_has_one_more_bucket_than_bounds_and_places_edges_in_the_upper_bucket():
    assert BUCKETS == len(BOUNDS) + 1
    assert histogram.bucket_index(0.0) == 0
    assert histogram.bucket_index(BOUNDS[0]) == 1  # bucket i is [b(i-1), b(i))
    assert histogram.bucket_index(BOUNDS[-1] * 10) == BUCKETS - 1


def test_it_interpolates_inside_the_bucket():
    counts = histogram.empty()
    counts[5] = 10  # [BOUNDS[4], BOUNDS[5])
    lower, upper = BOUNDS[4], BOUNDS[5]
    assert histogram.percentile(counts, 50) == pytest.approx(lower + (upper - lower) * 0.5)
    assert histogram.percentile(counts, 100) == pytest.approx(upper)
    assert histogram.percentile(histogram.empty(), 95) is None


def test_count_below_uses_the_same_interpolation():
    counts = histogram.empty()
    counts[3], counts[5] = 4, 10
    lower, upper = BOUNDS[4], BOUNDS[5]
    assert histogram.count_below(counts, BOUNDS[4]) == 4
    assert histogram.count_below(counts, lower + (upper - lower) * 0.3) == pytest.approx(4 + 3)
    assert histogram.count_below(counts, 1e9) == 14


@pytest.mark.parametrize("median", [0.05, 0.8, 12.0, 300.0])
@pytest.mark.parametrize("q", [50, 95, 99])
def test_percentile_of_merged_histograms_is_within_one_bucket_of_the_exact_value(median, q):
    values = lognormal_latencies(20000, median=median, seed=int(median * 1000) + q)
    # Split the values over 60 "minutes" x 3 "classes" like rollups, then merge them back.
    rng = random.Random(q)
    parts = [[] for _ in range(180)]
    for value in values:
        parts[rng.randrange(180)].append(value)
    merged = histogram.merge(histogram.from_values(part) for part in parts)
    assert sum(merged) == len(values)

    estimate = histogram.percentile(merged, q)
    exact = exact_percentile(values, q)
    assert abs(histogram.bucket_index(estimate) - histogram.bucket_index(exact)) <= 1, (estimate, exact)
    # ...which with sqrt(2)-spaced bounds means within a factor of sqrt(2) of the truth.
    assert exact / 2**0.5 <= estimate <= exact * 2**0.5


def test_merge_refuses_histograms_with_other_bounds():
    with pytest.raises(ValueError, match="bucket bounds differ"):
        histogram.merge([histogram.empty(), [1, 2, 3]])
    assert histogram.merge([None, [], histogram.empty()]) == histogram.empty()
