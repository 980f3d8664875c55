"""Last night's output: the probability change, and the flags that need the previous run (T2, T3).

:class:`PreviousRun` reads the previous output and lines it up with tonight's
rows by deal id; what the flags mean is defined in :mod:`scoring.score.flags`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.batch.output import read_output
from scoring.score.flags import Thresholds, new_red_flags, new_slip, t3, with_history_flags
from scoring.score.ragged import Ragged


class PreviousRun:
    """The last night's output, keyed by deal id (only the columns the history flags need).

    Parameters
    ----------
    path : Path
        A batch output (``.parquet``, ``.jsonl`` or ``.csv``).
    """

    COLUMNS = ("id", "as_of", "win_probability", "red_flags", "expected_close", "close_date_pushes")

    def __init__(self, path: Path):
        path = Path(path)
        df = read_output(path, columns=self.COLUMNS)
        if "as_of" in df.columns:
            df = df.sort_values("as_of", kind="stable")
        df = df.drop_duplicates("id", keep="last").set_index("id")
        self.path = path
        self.frame = df

    def apply(self, table: pa.Table, thresholds: Thresholds) -> pa.Table:
        """Add ``probability_change`` and refine the flags with the previous run.

        * T3: the probability dropped by more than the threshold, or a red flag appeared.
        * T2, for a deal scored last time: only a NEW slip (the expected close moved later, or
          ``close_date_pushes`` grew, since the last run), so an old slip does not flag a meeting
          every night.  A deal not in the previous run keeps the record's own T2.
        """
        ids = table.column("id").to_pandas()
        n = len(ids)
        prev = self.frame.reindex(ids.to_numpy())
        seen = prev.index.isin(self.frame.index) if len(self.frame) else np.zeros(n, bool)
        p_now = table.column("win_probability").to_numpy(zero_copy_only=False).astype(float)
        p_prev = _numbers(prev, "win_probability", n)
        change = np.where(seen, np.round(p_now - p_prev, 6), np.nan)
        prev_flags = prev["red_flags"].map(_as_list).tolist() if "red_flags" in prev else [[]] * n
        new_flag = new_red_flags(seen, table.column("red_flags").to_pylist(), prev_flags)
        close_now = np.array(table.column("expected_close").to_pylist(), dtype=object) \
            if "expected_close" in table.column_names else np.full(n, None, object)
        close_prev = prev["expected_close"].astype(object).to_numpy() if "expected_close" in prev \
            else np.full(n, None, object)
        push_now = pd.to_numeric(pd.Series(table.column("close_date_pushes").to_pylist(), dtype=object),
                                 errors="coerce").to_numpy(dtype=float)
        slipped = new_slip(seen, close_now, close_prev, push_now, _numbers(prev, "close_date_pushes", n))
        meet = with_history_flags(Ragged.from_arrow(table.column("analysis_meeting")), seen, slipped,
                                  t3(seen, p_now, p_prev, new_flag, thresholds))
        i_change = table.column_names.index("probability_change")
        table = table.set_column(i_change, "probability_change", pa.array(change, type=pa.float64(), from_pandas=True))
        i_meet = table.column_names.index("analysis_meeting")
        return table.set_column(i_meet, "analysis_meeting", meet.to_arrow())


def _numbers(prev: pd.DataFrame, name: str, n: int) -> np.ndarray:
    """A previous-run column as floats (NaN when missing or not a number)."""
    if name not in prev:
        return np.full(n, np.nan)
    return pd.to_numeric(prev[name], errors="coerce").to_numpy(dtype=float)


def _as_list(v: Any) -> list:
    """A list column's value as read back from any output format (JSON text in CSV)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        return json.loads(v)
    return list(v)
