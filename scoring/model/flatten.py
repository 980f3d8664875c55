"""Raw contract fields flattened to one row per snapshot (the challenger's input), and which
fields the rules read.

:func:`flatten` turns validated records into a DataFrame, from the fields the
pack declares (the contract's, plus the pack's own), with no rule in between:

* every opportunity field but the free text (``name``, ``account``,
  ``owner``), the identity (``id``, ``as_of``) and the label (``outcome``,
  ``closed_at``): bools 1/0, whole numbers and numbers as they are, unknown
  as NaN; enums and the short strings ``region``, ``industry``,
  ``product_line``, ``currency`` as categories (see :func:`categorise`);
  dates as days relative to ``as_of`` (``created_at`` -> days since created,
  ``stage_entered_at`` -> days in stage, any other date -> days from
  ``as_of`` to it);
* per child list (contacts, competitors, partners): the number of rows; for
  each enum field a count of rows per value and of rows where it is unknown
  (contacts by role and by stance, partners by customer attitude...); for
  each bool field counts of true, false and unknown.  Names and titles are
  left out.

Each column remembers the raw field it comes from (``df.attrs["raw_field"]``:
``amount``, ``contacts.role``, ``contacts`` for the row count), so importances
can be summed per raw field and set against :func:`fields_read`.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring.contract.schema import CHILD_LISTS

#: opportunity fields never flattened: identity, label, free text
SKIPPED = frozenset({"id", "name", "account", "owner", "outcome", "closed_at", "as_of"})
#: child fields never flattened (free text, the link)
SKIPPED_CHILD = frozenset({"name", "title", "opportunity_id", "as_of"})
#: short strings treated as categories
CATEGORICAL_STRINGS = ("region", "industry", "product_line", "currency")
#: date field -> (column, sign): sign * (field - as_of) in days
DATE_COLUMNS = {"created_at": ("days_since_created", -1), "stage_entered_at": ("days_in_stage_raw", -1)}
MAX_CATEGORIES = 250
OTHER = "__other__"


def _day(v: Any) -> float:
    return float(np.datetime64(v, "D").astype(np.int64)) if v is not None else np.nan


def flatten(records: Sequence[Mapping[str, Any]], fields: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Flattened raw fields of validated ``records`` (``fields``: the pack's declared fields,
    :attr:`RulePack.fields`).  Categorical columns are still object columns; ``attrs`` holds
    ``categorical`` (their names) and ``raw_field`` (column -> raw field)."""
    opp = fields.get("opportunity", {})
    cols: dict[str, list] = {}
    raw: dict[str, str] = {}
    cat: list[str] = []
    plan: list[tuple[str, Any]] = []
    for f in opp.values():
        if f.name in SKIPPED or f.name in CHILD_LISTS:
            continue
        if f.type == "enum" or f.name in CATEGORICAL_STRINGS:
            plan.append((f.name, "cat"))
            cat.append(f.name)
        elif f.type == "bool":
            plan.append((f.name, "bool"))
        elif f.type in ("int", "number"):
            plan.append((f.name, "num"))
        elif f.type == "date":
            plan.append((f.name, "date"))
    for name, how in plan:
        col = DATE_COLUMNS.get(name, (f"days_to_{name}", 1))[0] if how == "date" else name
        raw[col] = name
        cols[col] = []
    child_plan = []
    for lst in CHILD_LISTS:
        if lst not in fields:
            continue
        raw[f"{lst}.n"] = lst
        cols[f"{lst}.n"] = []
        for f in fields[lst].values():
            if f.name in SKIPPED_CHILD:
                continue
            if f.type == "enum":
                vals = [*f.values, None]
                names = [f"{lst}.{f.name}={v if v is not None else 'unknown'}" for v in vals]
            elif f.type == "bool":
                vals = [True, False, None]
                names = [f"{lst}.{f.name}={v}" for v in ("true", "false", "unknown")]
            else:
                continue
            for n in names:
                raw[n] = f"{lst}.{f.name}"
                cols[n] = []
            child_plan.append((lst, f.name, vals, names))
    for rec in records:
        as_of = _day(rec.get("as_of"))
        for name, how in plan:
            v = rec.get(name)
            if how == "cat":
                cols[name].append(None if v is None else str(v))
            elif how == "date":
                col, sign = DATE_COLUMNS.get(name, (f"days_to_{name}", 1))
                cols[col].append(sign * (_day(v) - as_of) if v is not None else np.nan)
            else:
                cols[name].append(np.nan if v is None else float(v))
        for lst in CHILD_LISTS:
            if lst in fields:
                cols[f"{lst}.n"].append(float(len(rec.get(lst) or [])))
        for lst, fname, vals, names in child_plan:
            c = Counter(row.get(fname) for row in rec.get(lst) or [])
            for v, n in zip(vals, names):
                cols[n].append(float(c.get(v, 0)))
    df = pd.DataFrame(cols)
    for c in df.columns:
        if c not in cat:
            df[c] = df[c].astype(np.float64)
    df.attrs["categorical"] = cat
    df.attrs["raw_field"] = raw
    return df


def categorise(df: pd.DataFrame, train_rows: np.ndarray) -> pd.DataFrame:
    """Categorical columns as pandas ``category`` with the categories seen in the training rows
    (at most :data:`MAX_CATEGORIES`, rarer ones folded into :data:`OTHER`; a value never seen
    in training becomes NaN).  A categorical column with no known training value is dropped."""
    out = df.copy()
    for c in df.attrs["categorical"]:
        counts = df[c].iloc[train_rows].value_counts(dropna=True)
        if len(counts) == 0:
            out = out.drop(columns=[c])
            continue
        keep = list(counts.index[:MAX_CATEGORIES])
        col = df[c]
        if len(counts) > MAX_CATEGORIES:
            seen = set(counts.index)
            col = col.where(col.isin(keep) | ~col.isin(seen), OTHER)
            keep.append(OTHER)
        col = col.where(col.isin(keep))
        out[c] = pd.Categorical(col, categories=sorted(keep))
    out.attrs = dict(df.attrs)
    return out


def fields_read(pack: Any) -> set[str]:
    """The raw fields the pack's rules read, directly or through its counts and computed fields:
    ``amount``, ``contacts.role``, ``contacts`` (a list tested for rows)..., plus ``stage``
    (the model reads it)."""
    counts, computed = getattr(pack, "counts", {}), getattr(pack, "computed", {})
    out = {"stage"}

    def add(name: str) -> None:
        if name in counts:
            c = counts[name]
            out.add(c.list)
            for x in c.reads:
                add(x)
        elif name in computed:
            c = computed[name]
            add(c.start)
            add(c.end)
        elif "[]." in name:
            out.add(name.replace("[].", "."))
        elif not name.startswith("ev_"):
            out.add(name)

    for r in pack.rules:
        for name in r.reads:
            add(name)
    return out
