"""The nightly batch: score a whole open pipeline, chunk by chunk, on every core.

    input (JSON Lines or a folder of CSV/Parquet tables)
      -> contract.reader.InputStream: partitions of validated column frames (+ rejects, orphans)
      -> ChunkScorer (in worker processes): column-wise rule evaluation, rule score,
         model probability and reasons, analysis-meeting flags
      -> OUTPUT (.parquet / .jsonl / .csv), REJECTS, summary, forecast

Nothing is lost: every input record is in OUTPUT or in REJECTS.  OUTPUT,
REJECTS and the forecast are written to temporary files beside their final
names and renamed into place only when the run succeeds, so a run killed
halfway leaves the previous night's files untouched.  A lock file
(``OUTPUT.lock``, held with ``flock``) makes a second run writing the same
OUTPUT refuse to start.

The per-record durable-rules path (:mod:`scoring.evidence.durable`) stays the reference;
``tests/test_batch.py`` checks the batch gives the same results.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.contract.frames import Frames
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.compiled import days_between
from scoring.errors import ScoringError
from scoring.evidence.pack import RulePack
from scoring.score.ragged import Ragged
from scoring.score.rulescore import VectorScorer

#: Days in a stage after which a deal counts as stalled (the "stalled stage" analysis-meeting flag).
DEFAULT_STALL_DAYS = {"technical_promotion": 90, "relationship": 90, "partner": 60, "solution": 60, "bidding": 45}
#: T3 fires when the probability dropped by more than this since the last run (absolute, 0-1).
DEFAULT_T3_DROP = 0.10
#: The run fails (exit code 3) when more than this share of the input is rejected.
DEFAULT_MAX_REJECTED_SHARE = 0.05
TOP_REASONS = 3
PROB_BINS = np.linspace(0.0, 1.0, 11)

OUTPUT_COLUMNS = [
    "id", "as_of", "stage", "win_probability", "probability_change", "rule_score", "data_completeness",
    "milestones_passed", "red_flags", "unverified_flags", "reasons_positive", "reasons_negative",
    "next_actions", "analysis_meeting", "model_version", "rule_pack_version", "scored_at",
]
LIST_COLUMNS = ("milestones_passed", "red_flags", "unverified_flags", "reasons_positive", "reasons_negative",
                "next_actions", "analysis_meeting")
#: always carried in the output: needed by --previous (T2) and the forecast
CARRIED = ("expected_close", "close_date_pushes", "amount", "currency", "owner", "region")


@dataclass
class Thresholds:
    """Settable thresholds of the history flags (documented defaults)."""

    t3_drop: float = DEFAULT_T3_DROP
    stall_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STALL_DAYS))


class ChunkScorer:
    """Scores column frames: evidence, rule score, probability, reasons, flags.

    Picklable (ships to worker processes): it holds the pack and model, and
    compiles the column-wise evaluator lazily in each process.
    """

    def __init__(self, pack: RulePack, model=None, *, thresholds: Thresholds | None = None,
                 keep: Sequence[str] = (), scored_at: str | None = None, as_of_default: str | None = None):
        self.pack = pack
        self.model = model
        self.thresholds = thresholds or Thresholds()
        self.keep = tuple(keep)
        self.scored_at = scored_at or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        self.as_of_default = as_of_default or _dt.date.today().isoformat()
        self._ready = False

    def __getstate__(self):
        d = dict(self.__dict__)
        for k in ("_evaluator", "_vscorer", "_feature_names", "_coef"):
            d.pop(k, None)
        d["_ready"] = False
        return d

    def _prepare(self):
        if self._ready:
            return
        self._evaluator = ColumnarEvaluator(self.pack)
        self._vscorer = VectorScorer(self.pack)
        if self.model is not None:
            self._feature_names = np.array(self.model.feature_names, dtype=object)
            self._coef = self.model.coef
        self._ready = True

    @property
    def model_version(self) -> str | None:
        return self.model.model_version if self.model is not None else None

    def score(self, frames: Frames) -> pa.Table:
        """One output row per deal of ``frames`` (an Arrow table, list columns native)."""
        self._prepare()
        opps = frames.opps
        n = len(opps)
        ev = self._evaluator.evaluate(frames, self.as_of_default)
        status = np.ascontiguousarray(ev.status.to_numpy(dtype=np.int8))
        stage_words = opps["stage"].astype(object).to_numpy()
        stage_idx = np.fromiter((STAGE_INDEX[s] for s in stage_words), dtype=np.int64, count=n)
        sc = self._vscorer.score(status, stage_idx)

        as_of = _text_col(opps, "as_of")
        as_of = np.where(pd.isna(as_of), self.as_of_default, as_of).astype(object)

        cols: dict[str, Any] = {
            "id": pa.array(opps["id"].astype(object).to_numpy(), type=pa.string()),
            "as_of": pa.array(as_of, type=pa.string()),
            "stage": pa.array(stage_words, type=pa.string()),
        }
        if self.model is not None:
            X = self.model.evidence.transform_statuses(status, stage_words)
            logit = X @ self._coef + self.model.intercept
            prob = 1.0 / (1.0 + np.exp(-logit))
            pos, neg = _top_reasons(X, self._coef, self._feature_names, TOP_REASONS)
            cols["win_probability"] = pa.array(np.round(prob, 6))
        else:
            pos = neg = Ragged(np.zeros(n + 1, np.int64), np.zeros(0, dtype=object))
            cols["win_probability"] = pa.nulls(n, pa.float64())
        cols["probability_change"] = pa.nulls(n, pa.float64())
        cols["rule_score"] = pa.array(sc.score)
        cols["data_completeness"] = pa.array(sc.completeness)
        cols["milestones_passed"] = sc.milestones_passed.to_arrow()
        cols["red_flags"] = sc.red_flags.to_arrow()
        cols["unverified_flags"] = sc.unverified_flags.to_arrow()
        cols["reasons_positive"] = pos.to_arrow()
        cols["reasons_negative"] = neg.to_arrow()
        cols["next_actions"] = sc.next_actions.to_arrow()
        cols["analysis_meeting"] = self._meetings(sc.meeting_flags, opps, stage_words, as_of).to_arrow()
        cols["model_version"] = pa.array([self.model_version] * n, type=pa.string())
        cols["rule_pack_version"] = pa.array([self.pack.version_tag] * n, type=pa.string())
        cols["scored_at"] = pa.array([self.scored_at] * n, type=pa.string())
        for name in dict.fromkeys(CARRIED + self.keep):
            if name in cols:
                continue
            cols[name] = _arrow_col(opps, name, self.pack)
        return pa.table(cols)

    def _meetings(self, triggers: Ragged, opps: pd.DataFrame, stage_words, as_of) -> Ragged:
        """The pack's triggers, plus ``STALLED`` when the deal sits in its stage beyond the threshold."""
        n = len(opps)
        entered = _text_col(opps, "stage_entered_at")
        limit = np.array([self.thresholds.stall_days.get(s, math.inf) for s in STAGES], dtype=float)
        stalled = np.zeros(n, dtype=bool)
        known = ~pd.isna(entered)
        if known.any():
            idx = np.nonzero(known)[0]
            days = (pd.to_datetime(as_of[idx]) - pd.to_datetime(entered[idx].astype(str))).days.to_numpy()
            st = np.fromiter((STAGE_INDEX[s] for s in stage_words[idx]), dtype=np.int64, count=len(idx))
            stalled[idx] = days > limit[st]
        return _append_flag(triggers, stalled, "STALLED")


def is_stalled(stage: str, stage_entered_at: str | None, as_of: str, thresholds: Thresholds) -> bool:
    """The single-record form of the STALLED flag (the batch computes it column-wise)."""
    if stage_entered_at is None:
        return False
    return days_between(stage_entered_at, as_of) > thresholds.stall_days.get(stage, math.inf)


# --------------------------------------------------------------------------- helpers


def _text_col(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column as an object array of 'YYYY-MM-DD'/text or None (missing column = all unknown)."""
    if name not in df.columns:
        return np.full(len(df), None, dtype=object)
    s = df[name]
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s.dt.strftime("%Y-%m-%d").astype(object).to_numpy()
    else:
        out = s.astype(object).to_numpy()
    return np.where(pd.isna(out), None, out).astype(object)


def _arrow_col(df: pd.DataFrame, name: str, pack: RulePack) -> pa.Array:
    f = pack.schema["opportunity"].get(name)
    if name not in df.columns:
        typ = {"bool": pa.bool_(), "int": pa.int64(), "number": pa.float64()}.get(f.type if f else "", pa.string())
        return pa.nulls(len(df), typ)
    s = df[name]
    if f is not None and f.type == "date" or pd.api.types.is_datetime64_any_dtype(s):
        return pa.array(_text_col(df, name), type=pa.string())
    if f is not None and f.type == "bool":
        return pa.array(s.astype("boolean"), type=pa.bool_())
    if f is not None and f.type == "int":
        return pa.array(s.astype("Int64"), type=pa.int64())
    if f is not None and f.type == "number":
        return pa.array(s.astype("Float64"), type=pa.float64())
    return pa.array(_text_col(df, name), type=pa.string())


def _top_reasons(X: np.ndarray, coef: np.ndarray, names: np.ndarray, k: int) -> tuple[Ragged, Ragged]:
    """Per row, the k evidence columns with the largest positive and the k with the most negative
    contributions (``coef * x``), ordered as :meth:`scoring.model.logistic.Model.reasons` orders them
    (by |contribution|, then feature name).

    The evidence is 0/1, so a row's contributions are the coefficients of its 1-columns: with the
    columns ranked once by coefficient, each row's top k are its first k 1-columns in that rank
    (a cumulative sum), with no per-row sort.
    """
    n = X.shape[0]
    out = []
    for sign in (1.0, -1.0):
        cand = [j for j in range(len(coef)) if sign * coef[j] > 0]
        cand.sort(key=lambda j: (-sign * coef[j], names[j]))
        cols = np.asarray(cand, dtype=np.int64)
        if n == 0 or len(cols) == 0 or k == 0:
            out.append(Ragged(np.zeros(n + 1, np.int64), np.zeros(0, dtype=object)))
            continue
        on = X[:, cols] != 0
        take = on & (np.cumsum(on, axis=1, dtype=np.int32) <= k)
        rows, c = np.nonzero(take)
        out.append(Ragged.from_pairs(rows, cols[c], names, n))
    return out[0], out[1]


def _append_flag(r: Ragged, mask: np.ndarray, flag: str) -> Ragged:
    """Append ``flag`` to the lists of the rows where ``mask`` is true."""
    if not mask.any():
        return r
    n = len(r)
    counts = np.diff(r.offsets) + mask
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    values = np.empty(offsets[-1], dtype=object)
    old_pos = np.arange(len(r.values)) + np.repeat(offsets[:-1] - r.offsets[:-1], np.diff(r.offsets))
    values[old_pos] = r.values
    values[offsets[1:][mask] - 1] = flag
    return Ragged(offsets, values)


# --------------------------------------------------------------------------- previous run


class PreviousRun:
    """The last night's output, keyed by deal id (only the columns the history flags need)."""

    COLUMNS = ("id", "as_of", "win_probability", "red_flags", "expected_close", "close_date_pushes")

    def __init__(self, path):
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
        prev = self.frame.reindex(ids.to_numpy())
        seen = prev.index.isin(self.frame.index) if len(self.frame) else np.zeros(len(ids), bool)
        p_now = table.column("win_probability").to_numpy(zero_copy_only=False).astype(float)
        p_prev = pd.to_numeric(prev["win_probability"], errors="coerce").to_numpy(dtype=float) \
            if "win_probability" in prev else np.full(len(ids), np.nan)
        change = np.where(seen, np.round(p_now - p_prev, 6), np.nan)
        drop = seen & (p_prev - p_now > thresholds.t3_drop)
        now_flags = table.column("red_flags").to_pylist()
        prev_flags = prev["red_flags"].tolist() if "red_flags" in prev else [None] * len(ids)
        new_flag = np.array([bool(s) and set(a or ()) - set(_as_list(b)) != set()
                             for s, a, b in zip(seen, now_flags, prev_flags)], dtype=bool)
        exp_now = np.array(table.column("expected_close").to_pylist(), dtype=object) \
            if "expected_close" in table.column_names else np.full(len(ids), None, object)
        exp_prev = prev["expected_close"].astype(object).to_numpy() if "expected_close" in prev else np.full(len(ids), None)
        moved = np.array([bool(s) and isinstance(a, str) and isinstance(b, str) and a > b
                          for s, a, b in zip(seen, exp_now, exp_prev)], dtype=bool)
        push_now = pd.to_numeric(pd.Series(table.column("close_date_pushes").to_pylist(), dtype=object),
                                 errors="coerce").to_numpy(dtype=float)
        push_prev = pd.to_numeric(prev["close_date_pushes"], errors="coerce").to_numpy(dtype=float) \
            if "close_date_pushes" in prev else np.full(len(ids), np.nan)
        pushed = seen & (np.nan_to_num(push_now, nan=-1) > np.nan_to_num(push_prev, nan=np.inf))
        new_slip = moved | pushed
        meet = Ragged.from_arrow(table.column("analysis_meeting"))
        meet = _remove_flag(meet, seen & ~new_slip, "T2")
        meet = _append_flag(meet, new_slip & ~_has(meet, "T2"), "T2")
        meet = _append_flag(meet, (drop | new_flag) & ~_has(meet, "T3"), "T3")
        i_change = table.column_names.index("probability_change")
        table = table.set_column(i_change, "probability_change", pa.array(change, type=pa.float64(), from_pandas=True))
        i_meet = table.column_names.index("analysis_meeting")
        return table.set_column(i_meet, "analysis_meeting", meet.to_arrow())


def _as_list(v) -> list:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        return json.loads(v)
    return list(v)


def _remove_flag(r: Ragged, mask: np.ndarray, flag: str) -> Ragged:
    """Remove ``flag`` from the lists of the rows where ``mask`` is true."""
    if not len(r.values):
        return r
    row = np.repeat(np.arange(len(r)), np.diff(r.offsets))
    drop = (r.values == flag) & mask[row]
    if not drop.any():
        return r
    keep = ~drop
    counts = np.bincount(row[keep], minlength=len(r))
    offsets = np.zeros(len(r) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Ragged(offsets, r.values[keep])


def _has(r: Ragged, flag: str) -> np.ndarray:
    hit = r.values == flag
    return np.add.reduceat(np.append(hit, False).astype(np.int64), r.offsets[:-1])[: len(r)] > 0 \
        if len(r.values) else np.zeros(len(r), bool)


def read_output(path, columns=None) -> pd.DataFrame:
    """Read a batch output (Parquet, JSON Lines or CSV; list columns as lists)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        have = pq.ParquetFile(path).schema_arrow.names
        return pq.read_table(path, columns=[c for c in (columns or have) if c in have]).to_pandas()
    if suffix in (".jsonl", ".ndjson"):
        df = pd.read_json(path, lines=True, dtype=False)
    elif suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        for c in LIST_COLUMNS:
            if c in df.columns:
                df[c] = df[c].map(lambda s: json.loads(s) if isinstance(s, str) and s else [])
        for c in ("win_probability", "probability_change", "rule_score", "data_completeness"):
            if c in df.columns:
                df[c] = pd.to_numeric(df[c], errors="coerce")
    else:
        raise ScoringError(f"{path}: unknown output format {suffix!r} (use .parquet, .jsonl or .csv)")
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return df


# --------------------------------------------------------------------------- writers


class _Writer:
    """Writes chunks of output rows to ``path`` through a temporary file renamed into place on commit."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in (".parquet", ".jsonl", ".ndjson", ".csv"):
            raise ScoringError(f"{path}: unknown output format {self.suffix!r} (use .parquet, .jsonl or .csv)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._pq = None
        self._fh = None
        self._header = True

    def write(self, table: pa.Table) -> None:
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            if self._pq is None:
                self._pq = pq.ParquetWriter(self.tmp, table.schema)
            self._pq.write_table(table)
            return
        if self._fh is None:
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        if self.suffix == ".csv":
            df = table.to_pandas()
            for c in df.columns:
                if pa.types.is_list(table.schema.field(c).type):
                    df[c] = [json.dumps(list(v), ensure_ascii=False) if v is not None else "[]" for v in df[c]]
            df.to_csv(self._fh, index=False, header=self._header, lineterminator="\n")
        else:
            for row in table.to_pylist():
                self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._header = False

    def commit(self, empty_schema: pa.Schema | None = None) -> None:
        if self._pq is None and self._fh is None:
            if empty_schema is not None:
                self.write(empty_schema.empty_table())
            else:
                self._fh = open(self.tmp, "w", encoding="utf-8")
        if self._pq is not None:
            self._pq.close()
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self._pq is not None:
                self._pq.close()
            if self._fh is not None:
                self._fh.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextmanager
def output_lock(output: Path):
    """Hold ``OUTPUT.lock`` (flock) for the run; refuse when another run holds it.

    The kernel releases the lock when the process dies, so a killed run never
    leaves a stale lock behind.
    """
    lock = Path(output).with_name(Path(output).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise ScoringError(f"another run is writing {output} (lock {lock} held by pid {other or '?'}); "
                               "refusing to start") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- summary and forecast

FORECAST_DIMENSIONS = ("owner", "region", "stage", "close_quarter")
UNKNOWN_KEY = "(unknown)"


class _Summary:
    """Accumulates the run summary and the pipeline forecast chunk by chunk (bounded memory)."""

    def __init__(self):
        self.n_read = self.n_scored = self.n_rejected = self.n_orphans = self.n_flagged = 0
        self.hist = np.zeros(len(PROB_BINS) - 1, dtype=np.int64)
        self.probs: list[np.ndarray] = []
        self.meetings: dict[str, int] = {}
        self.red_flags: dict[str, int] = {}
        self.undeclared: dict[str, set] = {}
        self.owner = pd.DataFrame(columns=["sum", "count", "unknown_items"]).astype(float)
        self.forecast: dict[tuple, list[float]] = {}
        self.rule_score_sum = 0.0

    def add(self, table: pa.Table) -> None:
        n = table.num_rows
        self.n_scored += n
        if n == 0:
            return
        df = table.select(["win_probability", "rule_score", "data_completeness", "owner", "region", "stage",
                           "expected_close", "amount", "currency"]).to_pandas()
        self.rule_score_sum += float(df["rule_score"].sum())
        p = df["win_probability"].to_numpy(dtype=float, na_value=np.nan)
        known = ~np.isnan(p)
        if known.any():
            self.hist += np.histogram(np.clip(p[known], 0, 1), bins=PROB_BINS)[0]
            self.probs.append(p[known].astype(np.float32))
        for col, acc in (("red_flags", self.red_flags), ("analysis_meeting", self.meetings)):
            vals = table.column(col).combine_chunks()
            flat = vals.values.to_pandas().value_counts()
            for k, v in flat.items():
                acc[k] = acc.get(k, 0) + int(v)
        lens = np.diff(np.asarray(table.column("red_flags").combine_chunks().offsets))
        self.n_flagged += int((lens > 0).sum())
        owner = df["owner"].fillna(UNKNOWN_KEY)
        g = df.assign(owner=owner).groupby("owner")["data_completeness"].agg(["sum", "count"])
        self.owner = self.owner.add(g, fill_value=0) if len(self.owner) else g.astype(float)
        # forecast: amount x probability, never adding different currencies
        if known.any():
            f = df[known & df["amount"].notna().to_numpy()].copy()
            if len(f):
                f["currency"] = f["currency"].fillna(UNKNOWN_KEY)
                f["ev"] = f["amount"].astype(float) * f["win_probability"].astype(float)
                ec = pd.to_datetime(f["expected_close"], errors="coerce")
                f["close_quarter"] = np.where(ec.notna(), ec.dt.year.astype("Int64").astype(str) + "-Q"
                                              + ec.dt.quarter.astype("Int64").astype(str), UNKNOWN_KEY)
                f["owner"] = f["owner"].fillna(UNKNOWN_KEY)
                f["region"] = f["region"].fillna(UNKNOWN_KEY)
                for dim in FORECAST_DIMENSIONS + ("total",):
                    keys = f[dim] if dim != "total" else pd.Series("all", index=f.index)
                    agg = f.assign(_k=keys).groupby(["_k", "currency"]).agg(
                        deals=("ev", "size"), amount=("amount", "sum"), expected_value=("ev", "sum"))
                    for (k, cur), row in agg.iterrows():
                        acc = self.forecast.setdefault((dim, str(k), str(cur)), [0, 0.0, 0.0])
                        acc[0] += int(row["deals"])
                        acc[1] += float(row["amount"])
                        acc[2] += float(row["expected_value"])

    def forecast_frame(self) -> pd.DataFrame:
        rows = [{"dimension": d, "key": k, "currency": c, "deals": v[0], "amount": round(v[1], 2),
                 "expected_value": round(v[2], 2)} for (d, k, c), v in self.forecast.items()]
        df = pd.DataFrame(rows, columns=["dimension", "key", "currency", "deals", "amount", "expected_value"])
        order = {d: i for i, d in enumerate(("total",) + FORECAST_DIMENSIONS)}
        if len(df):
            df = df.sort_values(["dimension", "key", "currency"], key=lambda s: s.map(order) if s.name == "dimension" else s)
        return df.reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        probs = np.concatenate(self.probs) if self.probs else np.zeros(0)
        dist = None
        if len(probs):
            q = np.quantile(probs, [0.1, 0.25, 0.5, 0.75, 0.9])
            dist = {"mean": round(float(probs.mean()), 4),
                    "quantiles": {k: round(float(v), 4) for k, v in zip(("p10", "p25", "p50", "p75", "p90"), q)},
                    "histogram": [{"from": round(float(a), 1), "to": round(float(b), 1), "deals": int(c)}
                                  for a, b, c in zip(PROB_BINS[:-1], PROB_BINS[1:], self.hist)]}
        owners = {str(k): {"deals": int(r["count"]), "completeness": round(float(r["sum"] / r["count"]), 3)}
                  for k, r in self.owner.sort_index().iterrows() if r["count"]}
        return {
            "read": self.n_read, "scored": self.n_scored, "rejected": self.n_rejected,
            "rejected_share": round(self.n_rejected / self.n_read, 4) if self.n_read else 0.0,
            "orphans": self.n_orphans, "flagged": self.n_flagged,
            "mean_rule_score": round(self.rule_score_sum / self.n_scored, 2) if self.n_scored else None,
            "win_probability": dist,
            "red_flags": dict(sorted(self.red_flags.items())),
            "analysis_meetings": dict(sorted(self.meetings.items())),
            "undeclared_fields": {k: sorted(v) for k, v in self.undeclared.items() if v},
            "completeness_by_owner": owners,
        }


# --------------------------------------------------------------------------- the run

_WORKER: dict[str, Any] = {}


def _init_worker(scorer: ChunkScorer, stream) -> None:
    _WORKER["scorer"] = scorer
    _WORKER["stream"] = stream


def _work(spec):
    chunk = _WORKER["stream"].load(spec)
    return _WORKER["scorer"].score(chunk.frames), _chunk_meta(chunk)


def _chunk_meta(chunk) -> dict:
    """What the parent needs of a chunk besides its scores.  ``keys``: (id, as_of) of the scored rows
    when duplicates can only be found across partitions (JSON Lines), else None."""
    meta = {k: getattr(chunk, k) for k in ("rejects", "orphans", "n_read", "undeclared_fields")}
    meta["keys"] = meta["lines"] = None
    if getattr(chunk, "needs_dedupe", False):
        opps = chunk.frames.opps
        ids = opps["id"].astype(object).tolist()
        asofs = _text_col(opps, "as_of").tolist()
        meta["keys"] = list(zip(ids, asofs))
        meta["lines"] = [int(x) for x in chunk.positions]
    return meta


def _workdir(output: Path) -> Path | None:
    """Temporary partitions go beside the output (same disk as the result), unless $TMPDIR is set."""
    return None if os.environ.get("TMPDIR") else Path(output).parent


def default_rejects_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.name.split(".")[0] + ".rejects.csv")


def run_batch(source, output, *, pack: RulePack, model=None, rejects=None, previous=None, as_of=None,
              keep: Sequence[str] = (), forecast=None, thresholds: Thresholds | None = None,
              workers: int | None = None, chunk_size: int = 50_000, progress: bool | None = None,
              summary_path=None) -> dict[str, Any]:
    """Score every record of ``source`` into ``output``; return the run summary.

    Parameters
    ----------
    source : path
        JSON Lines file, or a folder of CSV or Parquet tables (the contract's forms).
    output : path
        ``.parquet``, ``.jsonl`` or ``.csv``; written atomically.
    pack, model : the rule pack, and the model (None: rule score only, no probability).
    rejects : path, default ``<output stem>.rejects.csv``
        One row per rejected record (id, field, reason, where) and per orphan child row.
    previous : path, optional
        Last night's output: adds ``probability_change``, raises T3, and limits T2 to new slips.
    as_of : str, optional
        The date for records without ``as_of`` (default: today, the run date).
    keep : input fields to carry into the output (owner, amount, region, ...).
    forecast : path, optional
        Write the pipeline forecast (expected value by owner, region, stage, close quarter; per currency).
    workers : processes (default: every core).
    """
    from scoring.contract.reader import InputStream

    t0 = time.perf_counter()
    output = Path(output)
    rejects = Path(rejects) if rejects else default_rejects_path(output)
    as_of = as_of or _dt.date.today().isoformat()
    _dt.date.fromisoformat(as_of)
    thresholds = thresholds or Thresholds()
    workers = workers or os.cpu_count() or 1
    undeclared_keep = [k for k in keep if k not in pack.schema["opportunity"]]
    if undeclared_keep:
        raise ScoringError(f"--keep names fields that are not declared: {', '.join(undeclared_keep)}")
    scorer = ChunkScorer(pack, model, thresholds=thresholds, keep=keep, as_of_default=as_of)
    prev = PreviousRun(previous) if previous else None
    summary = _Summary()
    reject_rows: list[dict] = []
    seen_keys: set = set()

    with output_lock(output):
        out_w = _Writer(output)
        rej_w = _Writer(rejects)
        stream = InputStream(source, pack.schema, chunk_size=chunk_size, workdir=_workdir(output))
        try:
            specs = stream.partitions()
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: the worker pool forks this process
            bar = tqdm(total=len(specs), unit="chunk", desc="scoring", disable=None if progress is None else not progress,
                       leave=False)
            for table, meta in _map_ordered(specs, scorer, stream, workers):
                table, dups = _drop_duplicate_keys(table, meta["keys"], meta["lines"], seen_keys)
                if prev is not None:
                    table = prev.apply(table, thresholds)
                summary.n_read += meta["n_read"]
                summary.n_rejected += len(meta["rejects"]) + len(dups)
                summary.n_orphans += len(meta["orphans"])
                for ent, names in (meta["undeclared_fields"] or {}).items():
                    summary.undeclared.setdefault(ent, set()).update(names)
                for r in list(meta["rejects"]) + dups:
                    reject_rows.append({"kind": "record", "id": r.get("id"), "field": r.get("field"),
                                        "reason": r.get("reason"), "where": _where(r)})
                for o in meta["orphans"]:
                    reject_rows.append({"kind": "orphan", "id": o.get("opportunity_id"), "field": o.get("table"),
                                        "reason": o.get("reason") or "no opportunity with this id",
                                        "where": _where(o, o.get("table"))})
                if len(reject_rows) >= 10_000:
                    rej_w.write(_rejects_table(reject_rows))
                    reject_rows.clear()
                summary.add(table)
                out_w.write(table)
                bar.update(1)
            bar.close()
            if reject_rows:
                rej_w.write(_rejects_table(reject_rows))
            out_w.commit(empty_schema=_empty_output_schema(scorer))
            rej_w.commit(empty_schema=_rejects_table([]).schema)
        except BaseException:
            out_w.abort()
            rej_w.abort()
            raise
        finally:
            stream.close()

        result = summary.to_dict()
        result.update({
            "input": str(source), "output": str(output), "rejects": str(rejects),
            "as_of_default": as_of, "model": scorer.model_version, "rule_pack": pack.version_tag,
            "previous": str(previous) if previous else None, "scored_at": scorer.scored_at,
            "seconds": round(time.perf_counter() - t0, 2), "workers": workers,
        })
        result["deals_per_second"] = round(result["read"] / result["seconds"]) if result["seconds"] else None
        if result["read"] != result["scored"] + result["rejected"]:  # the invariant users rely on
            raise ScoringError(f"internal error: read {result['read']} != scored {result['scored']} + "
                               f"rejected {result['rejected']}")
        fc = summary.forecast_frame()
        result["forecast_total"] = fc[fc["dimension"] == "total"][["currency", "deals", "amount", "expected_value"]] \
            .to_dict("records") if len(fc) else []
        if forecast:
            fw = _Writer(Path(forecast))
            fw.write(pa.Table.from_pandas(fc, preserve_index=False))
            fw.commit()
            result["forecast"] = str(forecast)
        write_atomic(Path(summary_path) if summary_path else output.with_name(output.name.split(".")[0] + ".summary.json"),
                     json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _map_ordered(specs, scorer, stream, workers):
    """Score partitions in order, at most ``workers + 1`` in flight (bounded memory)."""
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            chunk = stream.load(spec)
            yield scorer.score(chunk.frames), _chunk_meta(chunk)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(scorer, stream)) as ex:
        pending = []
        it = iter(specs)
        for spec in it:
            pending.append(ex.submit(_work, spec))
            if len(pending) > workers:
                break
        while pending:
            fut = pending.pop(0)
            res = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(ex.submit(_work, nxt))
            yield res


def _drop_duplicate_keys(table: pa.Table, keys, lines, seen: set):
    """Drop rows whose (id, as_of) an earlier partition accepted (JSON Lines input: only the keys are kept)."""
    if keys is None:
        return table, []
    keep = np.ones(table.num_rows, dtype=bool)
    dups = []
    for i, k in enumerate(keys):
        if k in seen:
            keep[i] = False
            dups.append({"id": k[0], "field": "id", "reason": "duplicate (id, as_of)", "line": lines[i]})
        else:
            seen.add(k)
    if keep.all():
        return table, dups
    return table.filter(pa.array(keep)), dups


def _where(r: Mapping, table: str | None = None) -> str | None:
    if r.get("line") is not None:
        return f"line {r['line']}"
    if r.get("row") is not None:
        return f"{table + ' ' if table else ''}row {r['row']}"
    return None


def _rejects_table(rows: list[dict]) -> pa.Table:
    return pa.table({k: pa.array([r.get(k) for r in rows], type=pa.string()) if k != "id"
                     else pa.array([None if r.get(k) is None else str(r.get(k)) for r in rows], type=pa.string())
                     for k in ("kind", "id", "field", "reason", "where")})


def _empty_output_schema(scorer: ChunkScorer) -> pa.Schema:
    frames = Frames(opps=pd.DataFrame({"id": pd.Series([], dtype=object), "stage": pd.Series([], dtype=object)}),
                    children={})
    return scorer.score(frames).schema
