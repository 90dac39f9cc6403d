from __future__ import annotations

import random

from engine._plan import (
    ByteRange,
    Intervals,
    Progress,
    contiguous_prefix,
    merge,
    plan_missing,
    split_ranges,
    subtract,
)


def test_split_covers_the_file_exactly() -> None:
    ranges = split_ranges(10, 4)
    assert ranges == [ByteRange(0, 4), ByteRange(4, 8), ByteRange(8, 10)]
    assert ranges[-1].header() == (8, 9)
    assert split_ranges(0, 4) == []


def test_merge_and_subtract() -> None:
    assert merge([ByteRange(4, 6), ByteRange(0, 2), ByteRange(2, 3), ByteRange(5, 9)]) == [
        ByteRange(0, 3),
        ByteRange(4, 9),
    ]
    assert subtract([ByteRange(0, 10)], [ByteRange(2, 4), ByteRange(6, 7)]) == [
        ByteRange(0, 2),
        ByteRange(4, 6),
        ByteRange(7, 10),
    ]
    assert subtract([ByteRange(0, 10)], [ByteRange(0, 10)]) == []


def test_contiguous_prefix() -> None:
    assert contiguous_prefix([]) == 0
    assert contiguous_prefix([ByteRange(1, 5)]) == 0
    assert contiguous_prefix([ByteRange(3, 5), ByteRange(0, 3), ByteRange(6, 8)]) == 5


def test_plan_missing_resumes_from_partial_ranges() -> None:
    done = [ByteRange(0, 5), ByteRange(9, 12)]
    assert plan_missing(20, done, 4) == [ByteRange(5, 9), ByteRange(12, 16), ByteRange(16, 20)]


def test_progress_round_trip_and_rejects_other_files() -> None:
    p = Progress("abc", 100, (ByteRange(0, 10), ByteRange(10, 20), ByteRange(50, 60)))
    back = Progress.from_json(p.to_json(), etag="abc", size=100)
    assert back.done == (ByteRange(0, 20), ByteRange(50, 60))
    assert Progress.from_json(p.to_json(), etag="other", size=100).done == ()
    assert Progress.from_json(p.to_json(), etag="abc", size=99).done == ()
    assert Progress.from_json(b"{not json", etag="abc", size=100).done == ()
    assert Progress.from_json(b'{"etag":"abc","size":100,"done":[[0,500]]}', etag="abc", size=100).done == ()


def test_intervals_coalesce_in_any_order() -> None:
    rng = random.Random(11)
    for _ in range(200):
        blocks = [ByteRange(s, s + rng.randint(1, 40)) for s in rng.sample(range(0, 400, 5), 30)]
        ivs = Intervals()
        for b in blocks:
            ivs.add(b.start, b.end)
        assert list(ivs.ranges()) == merge(blocks)
        expected = merge(blocks)
        assert ivs.prefix() == (expected[0].end if expected[0].start == 0 else 0)


def test_intervals_from_saved_progress_and_touching_blocks() -> None:
    ivs = Intervals([ByteRange(10, 20), ByteRange(0, 5)])
    assert ivs.prefix() == 5
    ivs.add(5, 10)
    assert ivs.ranges() == (ByteRange(0, 20),)
    ivs.add(30, 30)  # empty: ignored
    ivs.add(25, 40)
    ivs.add(20, 25)
    assert ivs.ranges() == (ByteRange(0, 40),) and ivs.prefix() == 40
