"""The column-wise validator of the table form: opportunity rows plus child tables.

One partition (or a whole input) of the table form comes in as
:class:`Table` objects (columns by name, each an Arrow array, or a numpy object
array of Python values for a pandas column that mixes types); every declared
column is converted by :mod:`scoring.contract.columns`.  :func:`validate_tables`
returns a :class:`Validated` that knows each row's fate and hands out the good
deals in column form (:meth:`Validated.frames`) or as nested records
(:meth:`Validated.records`).

Each bad record yields one reject naming its first error, in this order: a
short CSV row (a row that ends before its header does: a null cell of CSV
text is a missing cell, an empty cell is ``""``), opportunity fields in
schema order (a bad value, then a missing required value), the ``max_field`` checks, the history's outcome, then its child rows
(in child table order), then duplicates of an accepted ``(id, as_of)``.
Row numbers (``row`` of rejects and orphans, ``(contacts.csv row N)`` in
reasons) are 1-based rows of the whole source table.  With ``as_of_default``
(the run's date) a deal without ``as_of`` takes that date: it and a deal of
the same id with that ``as_of`` are one snapshot.
"""
from __future__ import annotations

from dataclasses import dataclass, field as _dc_field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.contract.columns import (Col, cell_values, is_str_type, np_bool, plain, raw_values, text_array,
                                      text_column, typed_column)
from scoring.contract.frames import ROW, Frames
from scoring.contract.schema import CHILD_KEY, Field
from scoring.contract.entities import Entity, compiled
from scoring.contract.values import (AS_OF, CHILD_ROW, DUPLICATE, HISTORY_MISSING, ID, MISSING, OPPORTUNITY,
                                     SHORT_ROW, Schema, converters, exceeds, orphan_reason, safe_name)

__all__ = ["Table", "Validated", "validate_tables", "output_names"]

_AS_OF_FIELD = Field(AS_OF, "date")


@dataclass
class Table:
    """One input table: its columns by name and the 0-based source row of each row."""

    columns: dict[str, Any]
    src: np.ndarray
    label: str = ""

    @property
    def n(self) -> int:
        return len(self.src)


def output_names(schema: Schema, fields: Mapping[str, Any] | None, entity: str) -> list[str]:
    """The columns of ``entity`` in the frames: declared fields in schema order, kept by ``fields``
    (entity -> names; None keeps every field); ``id`` and ``as_of`` are always kept."""
    declared = list(schema[entity])
    if fields is None:
        names = declared
    else:
        keep = set(fields.get(entity, ()))
        names = [n for n in declared if n in keep]
    if entity == OPPORTUNITY:
        names = [n for n in (ID, AS_OF) if n not in names and n in schema[entity]] + names
    return names


def empty_array(ftype: str, n: int, dates: str) -> Any:
    """An all-unknown pandas array of the Frames dtype of ``ftype``."""
    if ftype == "bool":
        return pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool))
    if ftype == "int":
        return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
    if ftype == "number":
        return pd.arrays.FloatingArray(np.zeros(n, np.float64), np.ones(n, bool))
    return text_array(pa.nulls(n, pa.large_string()), ftype, dates)


def _convert(arr: Any, f: Field, text: bool, native, text_conv) -> Col:
    return text_column(arr, f, text_conv) if text else typed_column(arr, f, native)


def _key_array(arr: Any, n: int, text: bool) -> Any:
    """Raw key values (id / opportunity_id): Arrow strings (nulls) or an object array."""
    if arr is None:
        return pa.nulls(n, pa.large_string())
    if isinstance(arr, np.ndarray):
        return arr
    arr = plain(arr)
    if text:
        if arr.null_count:
            arr = pc.fill_null(arr, "")
        return pc.if_else(pc.equal(pc.binary_length(arr), 0), pa.scalar(None, arr.type), arr)
    if is_str_type(arr.type) or pa.types.is_null(arr.type):
        return arr.cast(pa.large_string())
    return cell_values(arr)


def _key_from_col(col: Col | None, n: int) -> Any:
    """(id/as_of) key of each row: the converted value, the raw value of a bad cell, None when null."""
    if col is None:
        return pa.nulls(n, pa.large_string())
    if not col.errors:
        data = col.data
        if col.kind != "str":
            return np.array(col.values(), dtype=object)
        if col.na.any():
            data = pc.if_else(pa.array(~col.na), data, pa.scalar(None, data.type))
        return data
    out = np.array(col.values(), dtype=object)
    for i in col.errors:
        out[i] = col.raw(i)
    return out


def _codes(arrays: list) -> list[np.ndarray]:
    """Joint integer codes of key arrays (equal values, equal codes); -1 for None."""
    lens = [len(a) for a in arrays]
    if all(isinstance(a, pa.Array) for a in arrays):
        ch = pa.chunked_array([a.cast(pa.large_string()) for a in arrays], pa.large_string())
        enc = pc.dictionary_encode(ch)
        idx = pa.chunked_array([c.indices for c in enc.chunks], pa.int32()).combine_chunks() if enc.num_chunks \
            else pa.array([], pa.int32())
        codes = idx.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    else:
        objs = [a if isinstance(a, np.ndarray) else np.array(a.to_pylist(), dtype=object) for a in arrays]
        allv = np.concatenate(objs) if objs else np.zeros(0, object)
        codes = pd.factorize(allv, use_na_sentinel=True)[0].astype(np.int64) if len(allv) else np.zeros(0, np.int64)
    out, pos = [], 0
    for m in lens:
        out.append(codes[pos:pos + m])
        pos += m
    return out


def _py(v: Any) -> Any:
    return v.as_py() if isinstance(v, pa.Scalar) else v


def _short_rows(tab: Table) -> dict[int, tuple[str, str]]:
    """CSV rows that end before the header does: row -> (first missing column, reason)."""
    names = list(tab.columns)
    first_null = None
    for k in range(len(names) - 1, -1, -1):
        arr = tab.columns[names[k]]
        if isinstance(arr, np.ndarray) or not arr.null_count:
            continue
        if first_null is None:
            first_null = np.full(tab.n, len(names), np.int64)
        first_null[np_bool(arr.is_null())] = k
    if first_null is None:
        return {}
    rows = np.flatnonzero(first_null < len(names))
    return {i: (safe_name(names[k]), SHORT_ROW.format(have=k, want=len(names)))
            for i, k in zip(rows.tolist(), first_null[rows].tolist())}


def _convert_entity(tab: Table, ent: Entity, text: bool) -> tuple[dict[str, Col], dict[int, tuple[str, str]]]:
    """Convert every declared column of one table and find each row's first error: a short CSV row,
    fields in schema order (a bad value, then a missing required value), then the ``max_field`` pairs."""
    n = tab.n
    cols: dict[str, Col] = {}
    first: dict[int, tuple[str, str]] = _short_rows(tab) if text else {}
    for name, f, native, text_conv, req in zip(ent.names, ent.fields, ent.native, ent.text, ent.required):
        col = None
        if name in tab.columns:
            col = _convert(tab.columns[name], f, text, native, text_conv)
            cols[name] = col
            for i in sorted(col.errors):
                first.setdefault(i, (name, col.errors[i]))
        if req:
            for i in (range(n) if col is None else np.flatnonzero(col.na).tolist()):
                first.setdefault(i, (name, MISSING))
    for a, b in ent.pairs:
        ca, cb = cols.get(a), cols.get(b)
        if ca is None or cb is None or ca.kind == "str" or cb.kind == "str":
            continue
        over = ~ca.na & ~cb.na & (ca.data > cb.data)
        for i in np.flatnonzero(over).tolist():
            first.setdefault(i, (a, exceeds(a, ca.py(i), b, cb.py(i))))
    return cols, first


@dataclass
class _Child:
    entity: Entity
    table: Table
    cols: dict[str, Col]
    pj: np.ndarray  # child row of each (child row, deal) pair
    pi: np.ndarray  # deal row of each pair


@dataclass
class Validated:
    """One validated partition of the table form.

    Attributes
    ----------
    rejects, orphans, undeclared_fields : as :class:`scoring.contract.reader.ReadResult`.
    positions : ndarray
        1-based source row of each good deal.
    n_read : int
        Opportunity rows seen.
    """

    schema: Schema
    text: bool
    opps: Table
    cols: dict[str, Col]
    ok: np.ndarray
    children: list[_Child]
    rejects: list[dict] = _dc_field(default_factory=list)
    orphans: list[dict] = _dc_field(default_factory=list)
    undeclared_fields: dict[str, list[str]] = _dc_field(default_factory=dict)
    as_of_default: str | None = None

    @property
    def n_read(self) -> int:
        return self.opps.n

    @property
    def positions(self) -> np.ndarray:
        return self.opps.src[self.ok] + 1

    def _pairs(self, child: _Child) -> tuple[np.ndarray, np.ndarray]:
        """(child rows, deal positions among the good deals), sorted by deal then child row."""
        newpos = np.full(self.opps.n, -1, np.int64)
        newpos[self.ok] = np.arange(len(self.ok))
        keep = newpos[child.pi] >= 0 if len(child.pi) else np.zeros(0, bool)
        pj, rows = child.pj[keep], newpos[child.pi[keep]]
        srt = np.argsort(rows, kind="stable")
        return pj[srt], rows[srt]

    def frames(self, fields: Mapping[str, Any] | None = None, dates: str = "text") -> Frames:
        """The good deals in column form (see :func:`scoring.contract.reader.load_partition`)."""
        schema, ok = self.schema, self.ok
        opp_fields = schema[OPPORTUNITY]
        out: dict[str, Any] = {}
        for name in output_names(schema, fields, OPPORTUNITY):
            col = self.cols.get(name)
            ftype = opp_fields[name].type
            out[name] = empty_array(ftype, len(ok), dates) if col is None else col.take(ok, ftype, dates)
        if self.as_of_default is not None and AS_OF in out:
            fill = pd.Timestamp(self.as_of_default) if dates == "datetime64" else self.as_of_default
            out[AS_OF] = pd.Series(out[AS_OF], copy=False).fillna(fill).array
        opps = pd.DataFrame(out, index=pd.RangeIndex(len(ok)))
        present = {c.entity.name: c for c in self.children}
        children: dict[str, pd.DataFrame] = {}
        for ent in compiled(schema).children:
            cf = schema[ent.name]
            c = present.get(ent.name)
            sel, rows, ccols = (np.zeros(0, np.int64), np.zeros(0, np.int64), {}) if c is None else \
                (*self._pairs(c), c.cols)
            cout: dict[str, Any] = {ROW: rows}
            for name in output_names(schema, fields, ent.name):
                col = ccols.get(name)
                ftype = cf[name].type
                cout[name] = empty_array(ftype, len(sel), dates) if col is None else col.take(sel, ftype, dates)
            children[ent.name] = pd.DataFrame(cout, index=pd.RangeIndex(len(sel)))
        absent = frozenset(e.name for e in compiled(schema).children if e.name not in present)
        return Frames(opps=opps, children=children, absent=absent)

    def records(self) -> list[dict]:
        """The good deals as normalised nested records (undeclared input fields kept), in row order."""
        comp = compiled(self.schema)
        recs = _rows(self.opps, comp.opp, self.cols, self.undeclared_fields.get(OPPORTUNITY, ()), self.text,
                     self.ok)
        for r in recs:
            for c in comp.children:
                r[c.name] = []
            if self.as_of_default is not None and r.get(AS_OF, "") is None:
                r[AS_OF] = self.as_of_default
        for child in self.children:
            items = _rows(child.table, child.entity, child.cols, self.undeclared_fields.get(child.entity.name, ()),
                          self.text, None)
            used: set[int] = set()
            name = child.entity.name
            for j, i in zip(*self._pairs(child)):
                row = items[j]
                recs[i][name].append(dict(row) if j in used else row)
                used.add(j)
        return recs


def _rows(tab: Table, ent: Entity, cols: dict[str, Col], undeclared, text: bool, sel: np.ndarray | None) -> list[dict]:
    n = tab.n
    names = list(ent.names) + list(undeclared)
    columns = [cols[k].values() if k in cols else [None] * n for k in ent.names]
    columns += [raw_values(tab.columns[k], text) for k in undeclared]
    if sel is not None and len(sel) < n:
        idx = sel.tolist()
        columns = [[c[i] for i in idx] for c in columns]
    return [dict(zip(names, vals)) for vals in zip(*columns)] if names else [{} for _ in range(n)]


def validate_tables(opps: Table, children: Mapping[str, Table], schema: Schema, history: bool,
                    text: bool, as_of_default: str | None = None,
                    parents: Mapping[str, np.ndarray] | None = None) -> Validated:
    """Validate opportunity rows plus child tables column-wise.

    Parameters
    ----------
    opps : Table
        One row per opportunity snapshot.
    children : dict
        child entity -> Table with ``opportunity_id`` (and ``as_of`` to attach
        a row to one snapshot of an id; without it a row attaches to every
        snapshot of its id).
    schema : Mapping
        entity -> field name -> Field.
    history : bool
        Closed deals: ``outcome`` is required.
    text : bool
        True when every cell is CSV text (the contract's CSV typing), False
        for typed columns (Parquet, pandas).
    as_of_default : str, optional
        The ``as_of`` of deals without one ('YYYY-MM-DD', checked by the caller).
    parents : dict, optional
        child entity -> the opportunity row (0-based) of each of its rows, for
        child rows that come nested in their record (JSON Lines read column-wise):
        they belong to that row, need no key and are never orphans; a child
        table listed here must be grouped by its opportunity row, in list order.
    """
    comp = compiled(schema)
    parents = parents or {}
    n = opps.n
    src = opps.src
    ent = comp.opp
    cols, first = _convert_entity(opps, ent, text)
    undeclared: dict[str, list[str]] = {}
    und = sorted(c for c in opps.columns if c not in ent.declared)
    if und:
        undeclared[OPPORTUNITY] = und
    if history and "outcome" in ent.declared:
        oc = cols.get("outcome")
        missing = np.ones(n, bool) if oc is None else oc.na  # bad outcomes are already in `first`
        for i in np.flatnonzero(missing).tolist():
            first.setdefault(i, ("outcome", HISTORY_MISSING))

    # keys: raw ids (a bad id still keys its child rows; a good id's raw value is its converted one)
    id_key = _key_array(opps.columns.get(ID), n, text)
    has_as_of = AS_OF in opps.columns
    if AS_OF in cols:
        as_key = _key_from_col(cols[AS_OF], n)
    elif has_as_of:
        as_key = _key_array(opps.columns[AS_OF], n, text)
    else:
        as_key = pa.nulls(n, pa.large_string())

    as_of_conv = converters(_AS_OF_FIELD)[0]
    child_data = []
    for child in comp.children:
        ctab = children.get(child.name)
        if ctab is None:
            continue
        ccols, cfirst = _convert_entity(ctab, child, text)
        cund = sorted(c for c in ctab.columns if c not in child.declared and c not in (CHILD_KEY, AS_OF))
        if cund:
            undeclared[child.name] = cund
        if child.name in parents:
            cid = pa.nulls(ctab.n, pa.large_string())  # joined by position, not by key
            keyed = False
            cas = None
            child_data.append((child, ctab, ccols, cfirst, cid, cas, keyed))
            continue
        cid = _key_array(ctab.columns[CHILD_KEY], ctab.n, text)
        keyed = has_as_of and AS_OF in ctab.columns
        cas = _key_from_col(_convert(ctab.columns[AS_OF], _AS_OF_FIELD, text, as_of_conv, as_of_conv),
                            ctab.n) if keyed else None
        child_data.append((child, ctab, ccols, cfirst, cid, cas, keyed))

    # joint codes of ids and as_of over the opportunities and every child table
    id_codes = _codes([id_key] + [d[4] for d in child_data])
    as_codes = _codes([as_key] + [d[5] for d in child_data if d[6]])
    n_as = int(max((c.max() for c in as_codes if len(c)), default=-1)) + 2
    oid_code = id_codes[0]
    oas_code = as_codes[0] + 1  # None -> 0
    okey_keyed = np.where(oid_code >= 0, oid_code * n_as + oas_code, -1)
    valid_o = np.flatnonzero(oid_code >= 0)
    sorted_cache: dict[bool, tuple[np.ndarray, np.ndarray]] = {}

    def index(keyed: bool) -> tuple[np.ndarray, np.ndarray]:
        if keyed not in sorted_cache:
            k = okey_keyed if keyed else oid_code
            order = valid_o[np.argsort(k[valid_o], kind="stable")]
            sorted_cache[keyed] = (order, k[order])
        return sorted_cache[keyed]

    orphans: list[dict] = []
    kids: list[_Child] = []
    k_as = 1
    for ci, (child, ctab, ccols, cfirst, cid, cas, keyed) in enumerate(child_data):
        m = ctab.n
        csrc = ctab.src
        ccode = id_codes[1 + ci]
        if keyed:
            ccode = np.where(ccode >= 0, ccode * n_as + as_codes[k_as] + 1, -1)
            k_as += 1
        if child.name in parents:
            pi = np.asarray(parents[child.name], dtype=np.int64)
            first_of = np.ones(m, bool)
            first_of[1:] = pi[1:] != pi[:-1]
            rank = np.arange(m) - np.maximum.accumulate(np.where(first_of, np.arange(m), 0))
            for j in sorted(cfirst):
                fname, reason = cfirst[j]
                first.setdefault(int(pi[j]), (f"{child.name}[{rank[j]}].{fname}", reason))
            kids.append(_Child(child, ctab, ccols, np.arange(m, dtype=np.int64), pi))
            continue
        order, skeys = index(keyed)
        lo = np.searchsorted(skeys, ccode, "left")
        hi = np.searchsorted(skeys, ccode, "right")
        cnt = np.where(ccode >= 0, hi - lo, 0)
        for j in np.flatnonzero(cnt == 0).tolist():
            oid = _py(cid[j])
            orphans.append({"table": child.name, "opportunity_id": oid, "row": int(csrc[j]) + 1,
                            "reason": orphan_reason(oid, keyed, _py(cas[j]) if keyed else None)})
        total = int(cnt.sum())
        starts = np.cumsum(cnt) - cnt
        pos = np.arange(total, dtype=np.int64) - np.repeat(starts, cnt) + np.repeat(lo, cnt)
        pj = np.repeat(np.arange(m, dtype=np.int64), cnt)
        pi = order[pos] if total else np.zeros(0, np.int64)
        if cfirst:
            # index of each child row within its record's list: rank among rows of the same key
            ko = np.argsort(ccode, kind="stable")
            sk = ccode[ko]
            newgrp = np.ones(m, bool)
            newgrp[1:] = sk[1:] != sk[:-1]
            gstart = np.maximum.accumulate(np.where(newgrp, np.arange(m), 0))
            rank = np.empty(m, np.int64)
            rank[ko] = np.arange(m) - gstart
            for j in sorted(cfirst):
                if cnt[j] == 0:
                    continue
                fname, reason = cfirst[j]
                for i in order[lo[j]:hi[j]].tolist():
                    first.setdefault(i, (f"{child.name}[{rank[j]}].{fname}",
                                         CHILD_ROW.format(reason=reason, table=ctab.label, row=int(csrc[j]) + 1)))
        kids.append(_Child(child, ctab, ccols, pj, pi))

    # duplicates among the accepted rows, in row order
    bad = np.zeros(n, bool)
    if first:
        bad[list(first)] = True
    ok_idx = np.flatnonzero(~bad)
    if len(ok_idx):
        as_code = oas_code
        if as_of_default is not None and (oas_code == 0).any():  # the run's date for deals without as_of
            same = _equal_to(as_key, as_of_default)
            as_code = np.where(oas_code == 0, int(oas_code[same][0]) if same.any() else n_as, oas_code)
        dup = pd.Series(oid_code[ok_idx] * (n_as + 1) + as_code[ok_idx]).duplicated(keep="first").to_numpy()
        for i in ok_idx[dup].tolist():
            first[i] = (ID, DUPLICATE)
        ok_idx = ok_idx[~dup]

    idc = cols.get(ID)
    rejects = [{"id": idc.py(i) if idc is not None else None, "field": first[i][0], "reason": first[i][1],
                "row": int(src[i]) + 1} for i in sorted(first)]
    return Validated(schema=schema, text=text, opps=opps, cols=cols, ok=ok_idx, children=kids, rejects=rejects,
                     orphans=orphans, undeclared_fields=undeclared, as_of_default=as_of_default)


def _equal_to(key: Any, value: str) -> np.ndarray:
    """Where a key array (Arrow strings or Python values) equals ``value``."""
    if isinstance(key, np.ndarray):
        return np.fromiter((v == value for v in key.tolist()), bool, len(key))
    return np_bool(pc.equal(key, pa.scalar(value, key.type))) if is_str_type(key.type) else np.zeros(len(key), bool)
