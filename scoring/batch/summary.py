"""The run summary and the pipeline forecast, accumulated chunk by chunk (bounded memory).

The summary counts what was read, scored and rejected (``read = scored + rejected``
always holds), the distribution of the win probability, the red flags and
analysis meetings, and the data completeness by owner.  The forecast sums
``amount x win_probability`` by owner, region, stage and close quarter, never
adding different currencies.

The summary also warns, with counts, about input that makes scores quietly
worse: a missing child table (every deal's contacts, say, are then unknown, and
the rules that read them unknown or unverified) and fields that neither the contract nor the pack
declares (a misspelt column is read as unknown).  ``scoring score --strict``
turns these warnings into an error before any output is replaced
(:meth:`RunSummary.check_strict`).

Numbers that are not finite (a NaN rule score, an infinite amount) are left
out and written as null, never as a bare ``NaN`` (the JSON stays valid).
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.contract.sources import Source
from scoring.contract.values import OPPORTUNITY
from scoring.errors import RejectedShareError, ScoringError

#: bins of the win-probability histogram of the summary
PROB_BINS = np.linspace(0.0, 1.0, 11)
#: what the forecast sums by (besides the total)
FORECAST_DIMENSIONS = ("owner", "region", "stage", "close_quarter")
#: the key of deals whose owner, region, currency or close quarter is unknown
UNKNOWN_KEY = "(unknown)"


def close_quarters(dates: np.ndarray) -> np.ndarray:
    """The quarter (``2026-Q4``) of each expected close, an output date ``YYYY-MM-DD`` (None: unknown),
    made column-wise from the text."""
    import pyarrow.compute as pc

    text = pa.array(dates, pa.string(), from_pandas=True)
    month = pc.cast(pc.utf8_slice_codeunits(text, 5, 7), pa.int64())
    quarter = pc.cast(pc.divide(pc.add(month, 2), 3), pa.string())
    out = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 4), "-Q", quarter, "")
    return pc.fill_null(out, UNKNOWN_KEY).to_numpy(zero_copy_only=False).astype(object)


class RunSummary:
    """Accumulates the run summary and the pipeline forecast chunk by chunk (bounded memory).

    Parameters
    ----------
    source : Source, optional
        The resolved input (:func:`scoring.contract.sources.resolve`): which tables it has.
    schema : mapping, optional
        entity -> field -> Field (the pack's schema): which child tables the contract has.
    """

    def __init__(self, source: Source | None = None, schema: Mapping[str, Any] | None = None):
        self.n_read = self.n_scored = self.n_rejected = self.n_orphans = self.n_flagged = 0
        self.hist = np.zeros(len(PROB_BINS) - 1, dtype=np.int64)
        self.probs: list[np.ndarray] = []
        self.meetings: dict[str, int] = {}
        self.red_flags: dict[str, int] = {}
        #: entity -> undeclared field -> records read in the partitions where it appears
        self.undeclared: dict[str, dict[str, int]] = {}
        self.owner = pd.DataFrame(columns=["sum", "count", "unknown_items"]).astype(float)
        self.forecast: dict[tuple, list[float]] = {}
        self.rule_score_sum = 0.0
        self.n_rule_scores = 0
        self.source = source
        self.missing_tables = missing_child_tables(source, schema)

    def add_undeclared(self, fields: Mapping[str, Sequence[str]] | None, n_read: int) -> None:
        """Count the undeclared fields one partition of ``n_read`` records reported (entity -> names)."""
        for ent, names in (fields or {}).items():
            acc = self.undeclared.setdefault(ent, {})
            for name in names:
                acc[name] = acc.get(name, 0) + int(n_read)

    def warnings(self) -> list[dict[str, Any]]:
        """What the run scored with but should not have: missing child tables, undeclared fields.

        One dict per warning: ``kind`` (``missing_table`` or ``undeclared_field``), what it is
        about, a count, and ``message`` (one line).  An undeclared field's ``records`` counts the
        records read in the parts of the input where it appears: in the table form, every row of
        the opportunities table (for a child table's column: the deals whose child rows have it).
        """
        out: list[dict[str, Any]] = []
        for table in self.missing_tables:
            out.append({"kind": "missing_table", "table": table, "deals": self.n_scored,
                        "message": f"{table} table missing: every deal's {table} are unknown, so the rules "
                                   f"that read them are unknown or unverified ({self.n_scored:,} deals); "
                                   f"add {table} to the input"})
        for ent, name, n in self._undeclared_counts():
            out.append({"kind": "undeclared_field", "entity": ent, "field": name, "records": n,
                        "message": f"{self._undeclared(ent, name, n)}: not read by any rule, so unknown "
                                   f"to them (misspelt? see the contract's field names)"})
        return out

    def _undeclared_counts(self) -> list[tuple[str, str, int]]:
        """(entity, field, records) of every undeclared field, the opportunities' first."""
        order = sorted(self.undeclared.items(), key=lambda kv: (kv[0] != OPPORTUNITY, kv[0]))
        return [(ent, name, n) for ent, counts in order for name, n in sorted(counts.items())]

    def _undeclared(self, ent: str, name: str, n: int) -> str:
        """Where an undeclared field is, and in how many records (see :meth:`warnings`)."""
        if self.source is None or self.source.kind != "tables":
            return f"undeclared field {name!r} in {ent} records (found among {n:,} records)"
        label = {e: lab for e, _, lab in self.source.tables}.get(ent, ent)
        if ent == OPPORTUNITY:
            return f"undeclared column {name!r} in {label} ({n:,} rows)"
        return f"undeclared column {name!r} in {label} (the {ent} of {n:,} deals)"

    def check_strict(self) -> None:
        """Raise :class:`~scoring.errors.ScoringError` (one line) when there is any :meth:`warnings`
        (``scoring score --strict``; the run calls it before it replaces any output)."""
        found = []
        if self.missing_tables:
            found.append(f"no {', '.join(self.missing_tables)} table (unknown for every deal)")
        found += [self._undeclared(ent, name, n) for ent, name, n in self._undeclared_counts()]
        if not found:
            return
        where = f"{self.source.path}: " if self.source is not None else ""
        raise ScoringError(f"{where}--strict: " + "; ".join(found) + "; nothing was written (add the tables "
                           "or fix the column names, or run without --strict to score with warnings)")

    def add(self, table: pa.Table) -> None:
        """Count one chunk of output rows (a table of :class:`scoring.batch.chunks.ChunkScorer`)."""
        n = table.num_rows
        self.n_scored += n
        if n == 0:
            return
        df = table.select(["win_probability", "rule_score", "data_completeness", "owner", "region", "stage",
                           "expected_close", "amount", "currency"]).to_pandas()
        rs = df["rule_score"].to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(rs)
        with np.errstate(over="ignore", invalid="ignore"):  # a sum too large for a float: inf, written as null
            self.rule_score_sum += float(rs[finite].sum())
        self.n_rule_scores += int(finite.sum())
        p = df["win_probability"].to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(p)
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
        # forecast: amount x probability, never adding different currencies (a sum too large for a float
        # is inf, or NaN for inf - inf: written as null by forecast_frame, so no numpy warning either)
        with np.errstate(over="ignore", invalid="ignore"):
            self._add_forecast(df, known)

    def _add_forecast(self, df: pd.DataFrame, known: np.ndarray) -> None:
        """Add one chunk's expected values (rows with a known probability and amount) to the forecast."""
        if not known.any():
            return
        f = df[known & df["amount"].notna().to_numpy()]
        if not len(f):
            return
        amount = f["amount"].to_numpy(dtype=float)
        ev = amount * f["win_probability"].to_numpy(dtype=float)
        currency = f["currency"].to_numpy(dtype=object, na_value=UNKNOWN_KEY)
        keys = {dim: f[dim].to_numpy(dtype=object, na_value=UNKNOWN_KEY) for dim in ("owner", "region", "stage")}
        keys["close_quarter"] = close_quarters(f["expected_close"].to_numpy(dtype=object, na_value=None))
        keys["total"] = np.full(len(f), "all", dtype=object)
        cur_codes, cur_names = pd.factorize(currency)
        for dim in FORECAST_DIMENSIONS + ("total",):
            k_codes, k_names = pd.factorize(keys[dim])
            group = k_codes.astype(np.int64) * len(cur_names) + cur_codes
            g_codes, groups = pd.factorize(group)
            deals = np.bincount(g_codes)
            amounts = np.bincount(g_codes, weights=amount)
            evs = np.bincount(g_codes, weights=ev)
            for gi, code in enumerate(groups.tolist()):
                acc = self.forecast.setdefault((dim, str(k_names[code // len(cur_names)]),
                                                str(cur_names[code % len(cur_names)])), [0, 0.0, 0.0])
                acc[0] += int(deals[gi])
                acc[1] += float(amounts[gi])
                acc[2] += float(evs[gi])

    def forecast_frame(self) -> pd.DataFrame:
        """The forecast: one row per dimension, key and currency (deals, amount, expected value)."""
        rows = [{"dimension": d, "key": k, "currency": c, "deals": v[0], "amount": _finite(v[1], 2),
                 "expected_value": _finite(v[2], 2)} for (d, k, c), v in self.forecast.items()]
        df = pd.DataFrame(rows, columns=["dimension", "key", "currency", "deals", "amount", "expected_value"])
        order = {d: i for i, d in enumerate(("total",) + FORECAST_DIMENSIONS)}
        if len(df):
            df = df.sort_values(["dimension", "key", "currency"], key=lambda s: s.map(order) if s.name == "dimension" else s)
        for c in ("amount", "expected_value"):
            if df[c].isna().any():  # a sum that overflowed: null, not NaN (JSON has no NaN)
                df[c] = df[c].astype(object).where(df[c].notna(), None)
        return df.reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """The counts and distributions of the summary (JSON-ready)."""
        probs = np.concatenate(self.probs) if self.probs else np.zeros(0)
        dist = None
        if len(probs):
            q = np.quantile(probs, [0.1, 0.25, 0.5, 0.75, 0.9])
            dist = {"mean": round(float(probs.mean()), 4),
                    "quantiles": {k: round(float(v), 4) for k, v in zip(("p10", "p25", "p50", "p75", "p90"), q)},
                    "histogram": [{"from": round(float(a), 1), "to": round(float(b), 1), "deals": int(c)}
                                  for a, b, c in zip(PROB_BINS[:-1], PROB_BINS[1:], self.hist)]}
        owners = {str(k): {"deals": int(r["count"]), "completeness": _finite(r["sum"] / r["count"], 3)}
                  for k, r in self.owner.sort_index().iterrows() if r["count"]}
        return {
            "read": self.n_read, "scored": self.n_scored, "rejected": self.n_rejected,
            "rejected_share": round(self.n_rejected / self.n_read, 4) if self.n_read else 0.0,
            "orphans": self.n_orphans, "flagged": self.n_flagged,
            "mean_rule_score": _finite(self.rule_score_sum / self.n_rule_scores, 2) if self.n_rule_scores else None,
            "win_probability": dist,
            "red_flags": dict(sorted(self.red_flags.items())),
            "analysis_meetings": dict(sorted(self.meetings.items())),
            "undeclared_fields": {k: sorted(v) for k, v in self.undeclared.items() if v},
            "missing_tables": list(self.missing_tables),
            "warnings": self.warnings(),
            "completeness_by_owner": owners,
        }


def missing_child_tables(source: Source | None, schema: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The contract's child tables (``contacts``, ...) a table-form input lacks (a JSON Lines record
    carries its own lists, so it lacks none)."""
    if source is None or schema is None or source.kind != "tables":
        return ()
    have = {entity for entity, _, _ in source.tables}
    return tuple(e for e in schema if e != OPPORTUNITY and e not in have)


def _finite(x: float, digits: int) -> float | None:
    """``x`` rounded, or None when it is not a finite number (JSON has no NaN)."""
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def check_rejected_share(summary: Mapping[str, Any], limit: float) -> None:
    """Raise :class:`~scoring.errors.RejectedShareError` when a run rejected more than ``limit`` of its input.

    Parameters
    ----------
    summary : mapping
        A run summary (:func:`scoring.batch.run.run_batch`'s result).
    limit : float
        The largest share (0-1) of rejected records that passes.
    """
    if summary["rejected_share"] > limit:
        raise RejectedShareError(
            f"{summary['rejected']} of {summary['read']} records rejected "
            f"({100 * summary['rejected_share']:.1f}% > {100 * limit:.1f}%); see {summary['rejects']}")


def _short(path: str) -> str:
    """A path relative to the current folder when it lies inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _amount(x: float | None) -> str:
    return "unknown (too large)" if x is None else f"{x:,.0f}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """A readable layout of a run summary (what ``scoring score`` prints)."""
    s = {**summary, **{k: _short(str(summary[k])) for k in ("input", "output", "rejects") if summary.get(k)}}
    lines = [
        f"scored {s['input']} -> {s['output']}" if s.get("status") != "failed" else
        f"scored {s['input']}: FAILED, {s['output']} not replaced (summary: {_short(s['summary'])})",
        f"  read {s['read']:,}  scored {s['scored']:,}  rejected {s['rejected']:,}  orphan child rows "
        f"{s['orphans']:,}  (rejects: {s['rejects']})",
        f"  model {s['model'] or 'none'}  rule pack {s['rule_pack']}",
        f"  records without as_of scored as of {s['as_of_default']} (the run date unless --as-of)",
        f"  deals with red flags: {s['flagged']:,}   mean rule score {s['mean_rule_score']}",
    ]
    wp = s.get("win_probability")
    if wp:
        q = wp["quantiles"]
        lines.append(f"  win probability: mean {wp['mean']:.3f}  p10 {q['p10']:.3f}  p50 {q['p50']:.3f}  "
                     f"p90 {q['p90']:.3f}")
        lines.append("    " + "  ".join(f"{h['from']:.1f}-{h['to']:.1f}:{h['deals']}" for h in wp["histogram"]))
    if s.get("analysis_meetings"):
        lines.append("  analysis meetings: " + ", ".join(f"{k} {v}" for k, v in s["analysis_meetings"].items()))
    for w in s.get("warnings") or []:
        lines.append(f"  warning: {w['message']}")
    if s.get("completeness_by_owner"):
        worst = sorted(s["completeness_by_owner"].items(), key=lambda kv: kv[1]["completeness"])[:5]
        lines.append("  data completeness by owner (lowest 5): "
                     + ", ".join(f"{k} {100 * v['completeness']:.0f}% ({v['deals']})" for k, v in worst))
    for f in s.get("forecast_total") or []:
        lines.append(f"  pipeline expected value ({f['currency']}): {_amount(f['expected_value'])} of "
                     f"{_amount(f['amount'])} over {f['deals']:,} deals")
    lines.append(f"  {s['seconds']} s, {s['deals_per_second'] or 0:,} deals/s, {s['workers']} workers")
    return "\n".join(lines)
