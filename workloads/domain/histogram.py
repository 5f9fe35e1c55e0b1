"""Latency histograms over the fixed, log-spaced LATENCY_BUCKET_BOUNDS: merge, percentile, count
below a threshold. Plain Python, no Django.

Bucket i holds values in [bounds[i-1], bounds[i]); bucket 0 is (-inf, bounds[0]) and the last is
[bounds[-1], +inf). Because every writer uses the same bounds, merging minutes or classes is adding
counts, and a percentile read from a merged histogram is off by at most the width of one bucket
(a factor of sqrt(2) here), whatever was merged.
"""

from bisect import bisect_right
from collections.abc import Iterable, Sequence

# Fixed, log-spaced latency bucket bounds (seconds) shared by every class, writer and reader, so
# histograms merge across minutes and classes by adding counts. N bounds => N + 1 buckets:
# bucket 0 is (-inf, b0), bucket i is [b(i-1), b(i)), the last is [b(N-1), +inf).
LATENCY_BUCKET_BOUNDS: tuple[float, ...] = tuple(round(0.01 * (2 ** (i / 2)), 6) for i in range(0, 40))

BOUNDS = LATENCY_BUCKET_BOUNDS
BUCKETS = len(BOUNDS) + 1


def empty() -> list[int]:
    return [0] * BUCKETS


def bucket_index(value: float, bounds: Sequence[float] = BOUNDS) -> int:
    return bisect_right(bounds, value)


def from_values(values: Iterable[float], bounds: Sequence[float] = BOUNDS) -> list[int]:
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect_right(bounds, value)] += 1
    return counts


def merge(histograms: Iterable[Sequence[int] | None], size: int = BUCKETS) -> list[int]:
    """Element-wise sum; empty or missing histograms (no completions that minute) are skipped."""
    total = [0] * size
    for counts in histograms:
        if not counts:
            continue
        if len(counts) != size:
            raise ValueError(f"A histogram has {len(counts)} buckets, expected {size}: bucket bounds differ.")
        for i, count in enumerate(counts):
            if count:
                total[i] += count
    return total


def add_into(total: list[int], counts: Sequence[int] | None) -> None:
    """Add `counts` into `total` in place (the hot loop of folding many rows)."""
    if not counts:
        return
    for i, count in enumerate(counts):
        if count:
            total[i] += count


def _bucket_edges(index: int, bounds: Sequence[float]) -> tuple[float, float]:
    # The open-ended first bucket starts at 0 (latencies and ages are never negative); the last
    # has no upper edge, so values there are reported as its lower edge (an underestimate, which
    # the caller can see because it equals bounds[-1]).
    lower = bounds[index - 1] if index > 0 else 0.0
    upper = bounds[index] if index < len(bounds) else bounds[-1]
    return lower, upper


def percentile(counts: Sequence[int], q: float, bounds: Sequence[float] = BOUNDS) -> float | None:
    """The q-th percentile (0 < q <= 100) with linear interpolation inside the bucket it falls in;
    None for an empty histogram."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = total * min(max(q, 0.0), 100.0) / 100.0
    seen = 0
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            lower, upper = _bucket_edges(index, bounds)
            fraction = (rank - seen) / count
            return lower + (upper - lower) * fraction
        seen += count
    return _bucket_edges(len(counts) - 1, bounds)[0]


def below_threshold(threshold: float, bounds: Sequence[float] = BOUNDS) -> tuple[int, float | None]:
    """How count_below reads `threshold`: the buckets before the returned index count whole, and
    the returned share of the bucket at that index (None: none of it)."""
    index = bisect_right(bounds, threshold)
    lower, upper = _bucket_edges(index, bounds)
    if upper > lower:
        return index, min(1.0, max(0.0, (threshold - lower) / (upper - lower)))
    return index, None


def count_below(counts: Sequence[int], threshold: float, bounds: Sequence[float] = BOUNDS) -> float:
    """How many observations were at or under `threshold`: whole buckets below it, plus the share
    of the bucket it falls in (linear interpolation, the same model `percentile` uses)."""
    if not counts:
        return 0.0
    index, share = below_threshold(threshold, bounds)
    below = float(sum(counts[:index]))
    if share is not None and index < len(counts) and counts[index]:
        below += counts[index] * share
    return below
