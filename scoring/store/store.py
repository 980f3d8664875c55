"""The score store: every run of ``scoring score``, every deal's scores and evidence, over time.

:class:`Store` opens a store by URL (:func:`scoring.store.backends.backend_for`), checks its
schema version, appends a run in one transaction, and answers the questions of the history
features: a run's rows, a deal's timeline, a window's probabilities, outcomes; it prunes old
runs and upgrades an older schema.  The tables are described in :mod:`scoring.store.schema`.
"""
from __future__ import annotations

import datetime as _dt
import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import pyarrow as pa

from scoring.errors import StoreError
from scoring.store.backends import DEFAULT_LOCK_TIMEOUT, Backend, backend_for
from scoring.store.schema import PG_INDEXES, SCHEMA_VERSION, statements

#: the columns of ``deal_scores``, in order (what a run appends per deal)
DEAL_COLUMNS = ("run_id", "deal_id", "as_of", "stage", "win_probability", "logit", "rule_score",
                "data_completeness", "red_flags", "expected_close", "close_date_pushes", "status", "measures",
                "contributions", "derived")
#: the Arrow types of the per-deal columns a run spills before appending (``run_id`` is added at the end)
DEAL_TYPES = {"deal_id": pa.string(), "as_of": pa.date32(), "stage": pa.string(), "win_probability": pa.float64(),
              "logit": pa.float64(), "rule_score": pa.float64(), "data_completeness": pa.float64(),
              "red_flags": pa.string(), "expected_close": pa.string(), "close_date_pushes": pa.int64(),
              "status": pa.string(), "measures": pa.list_(pa.float64()), "contributions": pa.list_(pa.float32()),
              "derived": pa.list_(pa.float64())}
#: the store's file name beside the output when no ``--store`` is given
DEFAULT_STORE_NAME = "history.duckdb"


@dataclass
class RunRecord:
    """What the store keeps about a run (the ``runs`` table), besides its deals."""

    as_of: str
    scored_at: str
    model_version: str | None
    rule_pack_version: str
    rules: Sequence[str]
    rule_kinds: Sequence[str]
    measures: Sequence[str] = ()
    intercept: float | None = None
    #: the model's derived-fact inputs, in the order of ``deal_scores.derived`` (empty: none)
    derived: Sequence[str] = ()
    input_fingerprint: str | None = None
    n_read: int = 0
    n_scored: int = 0
    n_rejected: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""

    def __post_init__(self):
        if not self.run_id:
            stamp = self.scored_at.replace("-", "").replace(":", "").replace("+0000", "Z").replace("+00:00", "Z")
            self.run_id = f"{stamp}-{uuid.uuid4().hex[:8]}"


class Store:
    """A score store (DuckDB file or PostgreSQL database).

    Parameters
    ----------
    url : str or Path
        ``postgresql://user@host:port/db``, or the path of a DuckDB file.
    lock_timeout : float
        Seconds to wait for a DuckDB file another process holds.
    make_folder : bool
        Create the DuckDB file's folder when missing (the default store beside an output whose folder
        the run creates); otherwise a missing folder is an error.
    """

    def __init__(self, url: str | Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, make_folder: bool = False):
        self.url = str(url)
        self.backend: Backend = backend_for(url, lock_timeout)
        self.make_folder = make_folder
        self._con = None

    @contextmanager
    def reading(self) -> Iterator["Store"]:
        """Within the block, the reading methods share one connection (opening one costs time)."""
        if self._con is not None or not self.backend.exists():
            yield self
            return
        with self.backend.connect() as con:
            self._con = con
            try:
                yield self
            finally:
                self._con = None

    @contextmanager
    def _read(self) -> Iterator[Any]:
        if self._con is not None:
            yield self._con
        else:
            with self.backend.connect() as con:
                yield con

    @classmethod
    def beside(cls, output: str | Path) -> "Store":
        """The default store of a run: ``history.duckdb`` in the output's folder."""
        return cls(Path(output).parent / DEFAULT_STORE_NAME, make_folder=True)

    def __repr__(self) -> str:
        return f"Store({self.backend.describe()!r})"

    # ----------------------------------------------------------------- schema
    def _version(self, con) -> int | None:
        """The store's schema version; None for an empty database; StoreError for one that is not a store."""
        b = self.backend
        tables = {r[0] for r in b.rows(con, "SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = current_schema()")}
        if "store_schema" not in tables:
            if "deal_scores" in tables or "runs" in tables:
                raise StoreError(f"store {b.describe()}: has tables runs/deal_scores but no store_schema: "
                                 "not a score store, or a damaged one")
            return None
        rows = b.rows(con, "SELECT version FROM store_schema")
        if len(rows) != 1:
            raise StoreError(f"store {b.describe()}: store_schema holds {len(rows)} rows, not 1: damaged store")
        return int(rows[0][0])

    def _checked(self, version: int | None) -> None:
        if version is None or version == SCHEMA_VERSION:
            return
        if version < SCHEMA_VERSION:
            raise StoreError(f"store {self.backend.describe()}: written with schema version {version}, this dealscore "
                             f"uses version {SCHEMA_VERSION}: run `scoring store upgrade --store {self.backend.describe()}`"
                             " (back it up first)")
        raise StoreError(f"store {self.backend.describe()}: written with schema version {version} by a newer "
                         f"dealscore (this one knows versions up to {SCHEMA_VERSION}): upgrade dealscore")

    def check(self) -> bool:
        """Check the store can be used (reached, and of this schema version, or empty); True when it
        holds a store, False when there is none yet (a DuckDB file that does not exist yet is created
        by the first append, in a folder that must exist)."""
        b = self.backend
        if not b.exists():
            if not Path(b.describe()).parent.is_dir() and not self.make_folder:
                raise StoreError(f"store {b.describe()}: its folder does not exist")
            return False
        with self._read() as con:
            version = self._version(con)
        self._checked(version)
        return version is not None

    def upgrade(self) -> tuple[int | None, int]:
        """Bring an older store to :data:`SCHEMA_VERSION` (one transaction); returns (from, to)."""
        b = self.backend
        if not b.exists():
            raise StoreError(f"store {b.describe()}: no store there")
        with b.connect(write=True) as con:
            b.begin(con)
            try:
                version = self._version(con)
                if version is None:
                    raise StoreError(f"store {b.describe()}: empty, nothing to upgrade (a run creates it)")
                if version > SCHEMA_VERSION:
                    self._checked(version)
                for stmt in statements(b.types, SCHEMA_VERSION, start=version):
                    b.execute(con, stmt)
                b.commit(con)
            except BaseException:
                b.rollback(con)
                raise
        return version, SCHEMA_VERSION

    def create_version(self, version: int) -> None:
        """Create an empty store of an older schema ``version`` (for tests of upgrades)."""
        b = self.backend
        with b.connect(write=True) as con:
            for stmt in statements(b.types, version):
                b.execute(con, stmt)

    def _create(self) -> None:
        """A DuckDB store that does not exist yet is created whole before it is written to."""
        b = self.backend
        if b.kind == "duckdb" and not b.exists():
            if self.make_folder:
                Path(b.describe()).parent.mkdir(parents=True, exist_ok=True)
            b.create(statements(b.types))

    def _ensure(self, con) -> None:
        """Inside a transaction: create the tables of an empty store, refuse another version."""
        b = self.backend
        if b.kind == "postgresql":  # concurrent appends (and the creation of the tables) one at a time
            b.execute(con, "SELECT pg_advisory_xact_lock(4242001)")
        version = self._version(con)
        self._checked(version)
        if version is None:
            for stmt in statements(b.types):
                b.execute(con, stmt)
            if b.kind == "postgresql":
                for stmt in PG_INDEXES:
                    b.execute(con, stmt)

    # ----------------------------------------------------------------- writing
    def append(self, run: RunRecord, deals: pa.Table | Path) -> str:
        """Append a run and its deals (an Arrow table or a Parquet file with :data:`DEAL_COLUMNS` but
        ``run_id``) in one transaction: a killed run leaves no part of itself.  Returns the run id."""
        b = self.backend
        self._create()
        with b.connect(write=True) as con:
            b.begin(con)
            try:
                self._ensure(con)
                b.execute(con, "INSERT INTO runs (run_id, as_of, scored_at, model_version, rule_pack_version, "
                               "input_fingerprint, n_read, n_scored, n_rejected, rules, measures, intercept, summary, "
                               "derived) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [run.run_id, run.as_of, run.scored_at, run.model_version, run.rule_pack_version,
                           run.input_fingerprint, run.n_read, run.n_scored, run.n_rejected, json.dumps(list(run.rules)),
                           json.dumps(list(run.measures)), run.intercept,
                           json.dumps(run.summary, ensure_ascii=False, default=str), json.dumps(list(run.derived))])
                rules = pa.table({"run_id": pa.array([run.run_id] * len(run.rules), pa.string()),
                                  "pos": pa.array(range(1, len(run.rules) + 1), pa.int32()),
                                  "rule_id": pa.array(list(run.rules), pa.string()),
                                  "kind": pa.array(list(run.rule_kinds), pa.string())})
                b.load(con, "run_rules", rules, rules.column_names)
                if isinstance(deals, pa.Table):
                    if "run_id" not in deals.column_names:
                        deals = with_run_id(deals, run.run_id)
                    b.load(con, "deal_scores", deals, DEAL_COLUMNS)
                else:
                    b.load(con, "deal_scores", Path(deals), DEAL_COLUMNS)
                b.commit(con)
            except BaseException:
                b.rollback(con)
                raise
        return run.run_id

    def record_outcomes(self, outcomes: pd.DataFrame) -> int:
        """Record (or correct) closed deals: columns ``deal_id``, ``outcome``, ``closed_at``.  Returns the count."""
        b = self.backend
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        rows = outcomes[["deal_id", "outcome", "closed_at"]].astype(str)
        self._create()
        with b.connect(write=True) as con:
            b.begin(con)
            try:
                self._ensure(con)
                t = pa.table({"deal_id": rows["deal_id"].tolist(), "outcome": rows["outcome"].tolist(),
                              "closed_at": pa.array(pd.to_datetime(rows["closed_at"]).dt.date, pa.date32()),
                              "recorded_at": [now] * len(rows)})
                ids = t.column("deal_id").to_pylist()
                for k in range(0, len(ids), 1000):
                    chunk = ids[k:k + 1000]
                    b.execute(con, f"DELETE FROM outcomes WHERE deal_id IN ({', '.join('?' * len(chunk))})", chunk)
                b.load(con, "outcomes", t, t.column_names)
                b.commit(con)
            except BaseException:
                b.rollback(con)
                raise
        return len(rows)

    def prune(self, keep_days: int, today: str | None = None) -> int:
        """Delete the runs (and their deals) older than ``keep_days`` before ``today``; returns how many."""
        b = self.backend
        cut = (_dt.date.fromisoformat(today) if today else _dt.date.today()) - _dt.timedelta(days=keep_days)
        if not self.check():
            return 0
        with b.connect(write=True) as con:
            b.begin(con)
            try:
                old = [r[0] for r in b.rows(con, "SELECT run_id FROM runs WHERE as_of < ?", [cut])]
                for table in ("deal_scores", "run_rules"):
                    b.execute(con, f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE as_of < ?)",
                              [cut])
                b.execute(con, "DELETE FROM runs WHERE as_of < ?", [cut])
                b.commit(con)
            except BaseException:
                b.rollback(con)
                raise
            if b.kind == "duckdb" and old:
                b.execute(con, "CHECKPOINT")
        return len(old)

    # ----------------------------------------------------------------- reading
    def runs(self) -> pd.DataFrame:
        """Every run, oldest first (``rules`` and ``measures`` as lists)."""
        if not self.check():
            return pd.DataFrame(columns=["run_id", "as_of", "scored_at", "model_version", "rule_pack_version",
                                         "intercept", "rules", "measures", "derived", "n_scored"])
        with self._read() as con:
            df = self.backend.arrow(con, "SELECT run_id, CAST(as_of AS VARCHAR) AS as_of, scored_at, model_version, "
                                         "rule_pack_version, intercept, rules, measures, derived, n_read, n_scored, "
                                         "n_rejected, summary FROM runs ORDER BY as_of, scored_at").to_pandas()
        for c in ("rules", "measures", "derived"):
            df[c] = df[c].map(lambda v: json.loads(v) if isinstance(v, str) else [])
        return df

    def run_deals(self, run_id: str, columns: Sequence[str] = DEAL_COLUMNS[1:]) -> pd.DataFrame:
        """A run's rows (deal_id as a column)."""
        cols = ", ".join("CAST(as_of AS VARCHAR) AS as_of" if c == "as_of" else c for c in columns)
        with self._read() as con:
            df = self.backend.arrow(con, f"SELECT {cols} FROM deal_scores WHERE run_id = ?", [run_id]).to_pandas()
        return _object_ids(df)

    def run_table(self, run_id: str, columns: Sequence[str] = DEAL_COLUMNS[1:]) -> pa.Table:
        """A run's rows as an Arrow table (``as_of`` as text), without going through pandas."""
        cols = ", ".join("CAST(as_of AS VARCHAR) AS as_of" if c == "as_of" else c for c in columns)
        with self._read() as con:
            return self.backend.arrow(con, f"SELECT {cols} FROM deal_scores WHERE run_id = ?", [run_id])

    def window_stats(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """Per deal over the runs ``run_ids``: how many stored probabilities and their median."""
        if not run_ids:
            return pd.DataFrame({"deal_id": [], "n": [], "median": []})
        med = "median(win_probability)" if self.backend.kind == "duckdb" else \
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY win_probability)"
        marks = ", ".join("?" * len(run_ids))
        with self._read() as con:
            return _object_ids(self.backend.arrow(con, f"SELECT deal_id, count(win_probability) AS n, {med} AS median "
                                                       f"FROM deal_scores WHERE run_id IN ({marks}) GROUP BY deal_id",
                                                  list(run_ids)).to_pandas())

    def deal_history(self, deal_id: str) -> pd.DataFrame:
        """Every stored row of one deal with its run's provenance, oldest first."""
        if not self.check():
            return pd.DataFrame()
        with self._read() as con:
            return self.backend.arrow(
                con, "SELECT d.run_id, CAST(r.as_of AS VARCHAR) AS run_as_of, CAST(d.as_of AS VARCHAR) AS as_of, "
                     "d.stage, d.win_probability, d.logit, d.rule_score, d.red_flags, d.expected_close, "
                     "d.close_date_pushes, d.status, d.measures, d.contributions, d.derived, r.model_version, "
                     "r.rule_pack_version, r.rules, r.intercept, r.derived AS derived_names "
                     "FROM deal_scores d JOIN runs r ON r.run_id = d.run_id WHERE d.deal_id = ? "
                     "ORDER BY r.as_of, r.scored_at", [deal_id]).to_pandas()

    def outcome_rows(self) -> pd.DataFrame:
        """Every stored row of a deal with a recorded outcome, from runs before its close, with the outcome."""
        if not self.check():
            return pd.DataFrame()
        with self._read() as con:
            return _object_ids(self.backend.arrow(
                con, "SELECT d.deal_id, CAST(r.as_of AS VARCHAR) AS run_as_of, d.stage, d.win_probability, "
                     "r.model_version, o.outcome, CAST(o.closed_at AS VARCHAR) AS closed_at "
                     "FROM deal_scores d JOIN runs r ON r.run_id = d.run_id JOIN outcomes o ON o.deal_id = d.deal_id "
                     "WHERE r.as_of < o.closed_at").to_pandas())

    def training_snapshots(self, pack_version: str, every: bool = False) -> pd.DataFrame:
        """Stored snapshots of closed deals scored with the rule pack ``pack_version``, taken before their
        close, joined with their outcomes: ``deal_id``, ``as_of`` (the run's), ``stage``, ``status``,
        ``measures``, ``outcome``, ``closed_at``, ``run_id``; one row per deal and run date (the last run
        of a date), in ``(deal_id, as_of)`` order.

        With ``every``, every stored snapshot of the pack instead, with ``outcome`` and ``closed_at`` None
        for a deal without a recorded outcome, and the snapshots taken on or after the close too: training
        (:func:`scoring.model.from_store.train_from_store`) counts them as drops rather than not seeing them.

        The stored evidence is enough to train a model over the same pack: the model's features are a
        function of the rules' statuses (and measures) and the stage, all stored.  Snapshots of another
        pack are left out rather than mapped (a rule the run did not evaluate is not "unknown")."""
        if not self.check():
            return pd.DataFrame()
        join, before = ("LEFT JOIN", "") if every else ("JOIN", "r.as_of < o.closed_at AND ")
        with self._read() as con:
            df = _object_ids(self.backend.arrow(
                con, "SELECT d.deal_id, CAST(r.as_of AS VARCHAR) AS as_of, r.scored_at, d.stage, d.status, d.measures, "
                     "o.outcome, CAST(o.closed_at AS VARCHAR) AS closed_at, d.run_id "
                     "FROM deal_scores d JOIN runs r ON r.run_id = d.run_id "
                     f"{join} outcomes o ON o.deal_id = d.deal_id "
                     f"WHERE {before}r.rule_pack_version = ?", [pack_version]).to_pandas())
        if not len(df):
            return df
        df = df.sort_values(["deal_id", "as_of", "scored_at"]).drop_duplicates(["deal_id", "as_of"], keep="last")
        return df.drop(columns=["scored_at"]).reset_index(drop=True)

    def query(self, sql: str, params: Sequence = ()) -> pd.DataFrame:
        """Run a read-only query (the store's SQL, ``?`` parameters)."""
        with self._read() as con:
            return self.backend.arrow(con, sql, params).to_pandas()


def with_run_id(deals: pa.Table, run_id: str) -> pa.Table:
    """The per-deal table with its ``run_id`` column first, every column of :data:`DEAL_COLUMNS`."""
    cols = {"run_id": pa.array([run_id] * deals.num_rows, pa.string())}
    for c in DEAL_COLUMNS[1:]:
        cols[c] = deals.column(c) if c in deals.column_names else pa.nulls(deals.num_rows, DEAL_TYPES[c])
    return pa.table(cols)


def _object_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Deal ids as Python strings (look-ups in an Arrow-backed string index are slow in pandas)."""
    if "deal_id" in df.columns:
        df["deal_id"] = df["deal_id"].astype(object)
    return df
