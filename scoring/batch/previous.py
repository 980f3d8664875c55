"""Last night's output: the probability change, and the flags that need the previous run (T2, T3).

:class:`PreviousRun` reads the previous output and lines it up with tonight's
rows by deal id; what the flags mean is defined in :mod:`scoring.score.flags`.

A previous run must be an output of this tool, checked before use: its columns
(:data:`~scoring.batch.chunks.SCORE_COLUMNS`, with the provenance columns) and
provenance values (a rule pack version and a ``scored_at`` time on every row).
Yesterday's *input* given instead would make every red flag look new (T3) and
hide every slip (T2); it is refused, as is a file that cannot be parsed, with
one line naming the file (:class:`~scoring.errors.ScoringError`, exit code 2;
a file the system refuses to read: ``OSError``, exit code 4).  The file is
only read.
"""
from __future__ import annotations

import csv
import errno
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.batch.chunks import SCORE_COLUMNS
from scoring.batch.output import output_format, read_output
from scoring.errors import ScoringError
from scoring.score.flags import Thresholds, iso_texts, new_red_flags, new_slip, t3, with_history_flags
from scoring.score.ragged import Ragged


class PreviousRun:
    """The last night's output, lined up by deal id (only the columns the history flags need).

    Parameters
    ----------
    path : Path
        A batch output (``.parquet``, ``.jsonl`` or ``.csv``).

    Attributes
    ----------
    index : pd.Index
        The previous run's deal ids (object, unique: a deal listed twice keeps its latest ``as_of``);
        the arrays below are in its order.
    probability, pushes : float arrays (NaN when missing); ``red_flags`` : :class:`Ragged`;
    expected_close : unicode array of ``YYYY-MM-DD`` texts (``""`` when missing);
    red flags as numbers (``flag_codes`` names them) for :func:`~scoring.score.flags.new_red_flags`.
    """

    COLUMNS = ("id", "as_of", "win_probability", "red_flags", "expected_close", "close_date_pushes",
               "rule_pack_version", "scored_at")

    def __init__(self, path: Path):
        path = Path(path)
        columns = _header(path)
        if columns is None:  # an empty JSON Lines file: the output of a run that scored nothing
            df = pd.DataFrame(columns=list(self.COLUMNS))
        else:
            _check_is_output(path, columns)
            try:
                df = read_output(path, columns=self.COLUMNS)
                df["red_flags"] = df["red_flags"].map(_as_list)
                problems = _provenance_problems(df)  # reads every value: a damaged file can fail here too
            except OSError as e:
                raise _unreadable(path, e) from e
            except (ValueError, TypeError, pa.ArrowException) as e:  # parse errors of pandas and json are ValueErrors
                raise _not_output(path, f"cannot be read as {output_format(path)}: {_first_line(e)}") from e
            if problems:
                raise _not_output(path, "not an output of `scoring score`: " + ", ".join(problems))
        if "as_of" in df.columns:
            df = df.sort_values("as_of", kind="stable")
        df = df.drop_duplicates("id", keep="last")
        self.path = path
        self._line_up(df["id"].to_numpy(dtype=object), _numbers(df, "win_probability"),
                      Ragged.from_lists(df["red_flags"].tolist()),
                      df["expected_close"].astype(object).to_numpy() if "expected_close" in df
                      else np.full(len(df), None, dtype=object),
                      _numbers(df, "close_date_pushes"))

    @classmethod
    def of(cls, label: str, ids: np.ndarray, probability: np.ndarray, red_flags: Ragged,
           expected_close: np.ndarray, pushes: np.ndarray) -> "PreviousRun":
        """A previous run given as arrays (one entry per deal, ids unique; a ``pd.Index`` of them is
        kept as it is, shared), e.g. a stored run; ``label`` names it in the run summary."""
        run = cls.__new__(cls)
        run.path = Path(label)
        run._line_up(ids, probability, red_flags, expected_close, pushes)
        return run

    def _line_up(self, ids, probability, red_flags, expected_close, pushes) -> None:
        # object dtype: look-ups in an Arrow-backed str index are a Python loop (1 s per 50,000 ids)
        self.index = ids if isinstance(ids, pd.Index) and ids.dtype == object else \
            pd.Index(np.asarray(ids, dtype=object), dtype=object)
        warm(self.index)
        self.probability = np.asarray(probability, dtype=float)
        # red flags as numbers (:func:`new_red_flags`): the run's flag codes, in ``flag_codes`` order
        numbers, names = pd.factorize(np.asarray(red_flags.values, dtype=object))
        self.flag_codes = pa.array([str(x) for x in names], pa.string())
        self.red_flags = Ragged(red_flags.offsets, numbers.astype(np.int64))
        self.expected_close = iso_texts(expected_close)
        self.pushes = np.asarray(pushes, dtype=float)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Each id's row in this run, -1 for a deal it did not score."""
        if not len(self.index):
            return np.full(len(ids), -1, dtype=np.int64)
        return self.index.get_indexer(np.asarray(ids, dtype=object))

    def apply(self, table: pa.Table, thresholds: Thresholds, positions: np.ndarray | None = None) -> pa.Table:
        """Add ``probability_change`` and refine the flags with the previous run.

        * T3: the probability dropped by more than the threshold, or a red flag appeared.
        * T2, for a deal scored last time: only a NEW slip (the expected close moved later, or
          ``close_date_pushes`` grew, since the last run), so an old slip does not flag a meeting
          every night.  A deal not in the previous run keeps the record's own T2.

        ``positions``: :meth:`positions` of the table's ids, when the caller has them.
        """
        n = table.num_rows
        pos = self.positions(table.column("id").to_numpy(zero_copy_only=False)) if positions is None else positions
        seen = pos >= 0
        at = np.where(seen, pos, 0)
        before = lambda a, empty: np.where(seen, a[at], empty) if len(a) else np.full(n, empty)  # noqa: E731
        p_now = table.column("win_probability").to_numpy(zero_copy_only=False).astype(float)
        p_prev = before(self.probability, np.nan)
        change = np.where(seen, np.round(p_now - p_prev, 6), np.nan)
        new_flag = new_red_flags(seen, self._flag_numbers(table.column("red_flags")), self.red_flags.take(pos))
        close_now = pc.fill_null(pc.cast(table.column("expected_close"), pa.string()), "") \
            .to_numpy(zero_copy_only=False).astype(str) if "expected_close" in table.column_names else np.full(n, "")
        push_now = pd.to_numeric(pd.Series(table.column("close_date_pushes").to_pylist(), dtype=object),
                                 errors="coerce").to_numpy(dtype=float)
        slipped = new_slip(seen, close_now, before(self.expected_close, ""), push_now, before(self.pushes, np.nan))
        meet = with_history_flags(Ragged.from_arrow(table.column("analysis_meeting")), seen, slipped,
                                  t3(seen, p_now, p_prev, new_flag, thresholds))
        i_change = table.column_names.index("probability_change")
        table = table.set_column(i_change, "probability_change", pa.array(change, type=pa.float64(), from_pandas=True))
        i_meet = table.column_names.index("analysis_meeting")
        return table.set_column(i_meet, "analysis_meeting", meet.to_arrow())


    def _flag_numbers(self, col: pa.ChunkedArray | pa.Array) -> Ragged:
        """Tonight's red flags (an Arrow list column) as this run's flag numbers (-1: a flag it never had)."""
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(len(col) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        numbers = pc.fill_null(pc.index_in(pc.list_flatten(col), value_set=self.flag_codes), -1)
        return Ragged(offsets, numbers.to_numpy(zero_copy_only=False).astype(np.int64))


def warm(index: pd.Index) -> None:
    """Build the index's hash table now: in the run's process, before the workers are forked, so
    that they share it instead of each building its own on its first look-up."""
    if len(index):
        index.get_indexer(index[:1])


def _numbers(prev: pd.DataFrame, name: str) -> np.ndarray:
    """A previous-run column as floats (NaN when missing or not a number)."""
    if name not in prev:
        return np.full(len(prev), np.nan)
    return pd.to_numeric(prev[name], errors="coerce").to_numpy(dtype=float)


def _as_list(v: Any) -> list:
    """A list column's value as read back from any output format (JSON text in CSV); ValueError if not a list."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        v = json.loads(v)
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
        raise ValueError(f"red_flags holds {type(v).__name__} values, not lists of rule ids")
    return [str(x) for x in v]


# --------------------------------------------------------------------------- is it an output of this tool?

#: what to do when ``--previous`` is refused
_WHAT_TO_DO = "pass the output (--out) of an earlier `scoring score` run, or leave --previous out"


def _not_output(path: Path, why: str) -> ScoringError:
    return ScoringError(f"--previous {path}: {why}; {_WHAT_TO_DO}")


def _unreadable(path: Path, e: OSError) -> OSError:
    """The system's refusal to read ``path``, with what to do (the command prints it with exit code 4)."""
    why = e.strerror or e.__class__.__name__
    return OSError(e.errno or errno.EIO, f"{why} (reading --previous); {_WHAT_TO_DO}", str(path))


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0][:200].rstrip(". ") if text else "") or e.__class__.__name__


def _header(path: Path) -> list[str] | None:
    """The column names of an output file, read without reading its rows (None: an empty JSON Lines file)."""
    try:
        fmt = output_format(path)
    except ScoringError:
        raise _not_output(path, "not an output of `scoring score` (a .parquet, .jsonl or .csv file)") from None
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                return next(csv.reader(fh), [])
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    return list(row) if isinstance(row, dict) else []
            return None
    except OSError as e:
        raise _unreadable(path, e) from e
    except (ValueError, csv.Error, pa.ArrowException) as e:  # JSON, UTF-8 and Parquet footer errors
        raise _not_output(path, f"cannot be read as {fmt}: {_first_line(e)}") from e


def _check_is_output(path: Path, columns: list[str]) -> None:
    """Refuse a file without the columns of an output (e.g. yesterday's input instead of its scores)."""
    missing = [c for c in SCORE_COLUMNS if c not in columns]
    if not missing:
        return
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    kind = "the records input of a run, not its output" if "id" in columns and "stage" in columns \
        and "rule_score" not in columns else "not an output of `scoring score`"
    raise _not_output(path, f"{kind}: no column {shown}")


def _text(s: pd.Series) -> pd.Series:
    """The text values of a column; None for any other value (a number is no date)."""
    return s.map(lambda v: v if isinstance(v, str) else None).astype(object)


def _provenance_problems(df: pd.DataFrame) -> list[str]:
    """What is missing from the provenance of an output: every row names its deal, the rule pack that
    scored it and when (empty when the frame is an output's)."""
    if not len(df):
        return []
    bad_id = int((~df["id"].map(lambda v: isinstance(v, str) and v != "")).sum())
    bad_as_of = int(pd.to_datetime(_text(df["as_of"]), format="%Y-%m-%d", errors="coerce").isna().sum())
    pack = df["rule_pack_version"]
    bad_pack = int((pack.isna() | (pack.astype(str).str.strip() == "")).sum())
    when = df["scored_at"]  # datetimes when pandas' JSON reader recognised them
    when = pd.to_datetime(when if pd.api.types.is_datetime64_any_dtype(when) else _text(when), errors="coerce",
                          utc=True, format="ISO8601")
    bad_when = int(when.isna().sum())
    probs = df["win_probability"]
    nums = pd.to_numeric(probs, errors="coerce")
    bad_prob = int(((probs.notna() & nums.isna()) | (nums < 0) | (nums > 1)).sum())
    return [f"{n:,} rows without {what}" for n, what in
            ((bad_id, "an id"), (bad_as_of, "an as_of date"), (bad_pack, "a rule_pack_version"),
             (bad_when, "a scored_at time"), (bad_prob, "a win_probability between 0 and 1 (or empty)")) if n]
