"""The flags that are not rules of the pack: STALLED, a new slip (T2), T3; and the flag lists they edit."""
from __future__ import annotations

import numpy as np
import pytest

from scoring.contract.schema import STAGE_INDEX
from scoring.score.flags import (DEFAULT_STALL_DAYS, Thresholds, append_flag, has_flag, is_stalled, new_red_flags,
                                 new_slip, remove_flag, stalled, t3, with_history_flags)
from scoring.score.ragged import Ragged


def ragged(lists):
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=offsets[1:])
    return Ragged(offsets, np.array([v for x in lists for v in x], dtype=object))


@pytest.mark.parametrize("days, expected", [(45, False), (46, True)])
def test_stalled_after_more_days_in_stage_than_the_threshold(days, expected):
    assert DEFAULT_STALL_DAYS["bidding"] == 45
    got = stalled(np.array([STAGE_INDEX["bidding"]]), np.array([days], dtype=float), Thresholds())
    assert got.tolist() == [expected]


def test_unknown_stage_entry_or_stage_without_threshold_never_stalls():
    th = Thresholds(stall_days={"bidding": 1})
    got = stalled(np.array([STAGE_INDEX["bidding"], STAGE_INDEX["solution"]]), np.array([np.nan, 1000.0]), th)
    assert got.tolist() == [False, False]
    assert not is_stalled("bidding", None, "2026-11-25", th)


def test_single_record_stalled_is_the_column_wise_flag_on_one_row():
    th = Thresholds(stall_days={"solution": 30})
    assert is_stalled("solution", "2026-01-01", "2026-02-01", th)        # 31 days
    assert not is_stalled("solution", "2026-01-02", "2026-02-01", th)    # 30 days


def test_t3_on_a_drop_beyond_the_threshold_or_a_new_red_flag_for_deals_seen_before():
    seen = np.array([True, True, True, False])
    p_before = np.array([0.60, 0.60, 0.60, 0.90])
    p_now = np.array([0.45, 0.55, 0.60, 0.10])
    new_flag = new_red_flags(seen, [["L1"], ["L1"], ["L1", "L2"], ["L9"]], [["L1"], ["L1"], ["L1"], []])
    assert new_flag.tolist() == [False, False, True, False]
    assert t3(seen, p_now, p_before, new_flag, Thresholds(t3_drop=0.10)).tolist() == [True, False, True, False]


def test_new_slip_is_a_later_close_or_more_pushes_than_last_run():
    seen = np.array([True, True, True, False])
    close_now = np.array(["2027-02-01", "2027-01-01", "2027-01-01", "2027-09-01"], dtype=object)
    close_before = np.array(["2027-01-01", "2027-01-01", "2027-01-01", "2027-01-01"], dtype=object)
    got = new_slip(seen, close_now, close_before, np.array([0, 2, 1, 5.0]), np.array([0, 1, 1, 0.0]))
    assert got.tolist() == [True, True, False, False]


def test_history_flags_keep_t2_only_for_a_new_slip_and_add_t3_once():
    meetings = ragged([["T2"], ["T2"], [], ["T3"], ["T2"]])
    seen = np.array([True, True, True, True, False])
    slipped = np.array([False, True, True, False, False])
    t3_mask = np.array([False, False, True, True, False])
    got = with_history_flags(meetings, seen, slipped, t3_mask).tolist()
    assert got == [[], ["T2"], ["T2", "T3"], ["T3"], ["T2"]]


def test_flag_lists_see_only_their_own_row():
    """An empty row before a row that starts with the flag does not hold it (an old reduceat bug)."""
    r = ragged([[], ["T2"], ["A", "T2"], []])
    assert has_flag(r, "T2").tolist() == [False, True, True, False]
    assert append_flag(r, ~has_flag(r, "T2"), "T2").tolist() == [["T2"], ["T2"], ["A", "T2"], ["T2"]]
    assert remove_flag(r, np.array([True, True, False, True]), "T2").tolist() == [[], [], ["A", "T2"], []]
