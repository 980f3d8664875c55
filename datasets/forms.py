"""The generator's tables in the contract's other forms: nested records, JSON Lines, CSV and Parquet files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.contract.schema import CHILD_KEY, CHILD_LISTS

#: The tables of the table form, the opportunities first.
TABLES: tuple[str, ...] = ("opportunities",) + CHILD_LISTS

# --------------------------------------------------------------------- nested form
def _column_values(s: pd.Series) -> list:
    """A column as Python values with None for null; dates as YYYY-MM-DD."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        arr = s.to_numpy(dtype="datetime64[D]")
        txt = np.datetime_as_string(arr, unit="D")
        nat = np.isnat(arr)
        return [None if m else t for t, m in zip(txt.tolist(), nat.tolist())]
    na = s.isna().to_numpy()
    if isinstance(s.dtype, pd.BooleanDtype):
        vals = s.to_numpy(dtype=bool, na_value=False).tolist()
    elif isinstance(s.dtype, (pd.Int64Dtype,)):
        vals = s.to_numpy(dtype=np.int64, na_value=0).tolist()
    elif isinstance(s.dtype, pd.Float64Dtype) or pd.api.types.is_float_dtype(s.dtype):
        vals = [int(v) if float(v).is_integer() else float(v)
                for v in s.to_numpy(dtype=np.float64, na_value=0.0).tolist()]
    else:
        vals = s.astype(object).tolist()
    return [None if m else v for v, m in zip(vals, na.tolist())]


def _rows(df: pd.DataFrame) -> list[dict]:
    cols = [(c, _column_values(df[c])) for c in df.columns]
    out = []
    for i in range(len(df)):
        out.append({c: v[i] for c, v in cols if v[i] is not None})
    return out


def tables_to_records(tables: dict[str, pd.DataFrame]) -> list[dict]:
    """Nested records (contract form) from ``generate_tables`` output.

    Null fields are omitted; every record carries the three child lists (an
    empty list when none); child rows keep their order and lose
    ``opportunity_id`` (and ``as_of``).  Meant for small sizes.
    """
    opp = _rows(tables["opportunities"])
    snap = "as_of" in tables.get("contacts", pd.DataFrame()).columns
    pos = {(r["id"], r.get("as_of")) if snap else r["id"]: i for i, r in enumerate(opp)}
    for rec in opp:
        for lst in CHILD_LISTS:
            rec[lst] = []
    for lst in CHILD_LISTS:
        df = tables.get(lst)
        if df is None or len(df) == 0:
            continue
        has_asof = "as_of" in df.columns
        for row in _rows(df):
            oid = row.pop(CHILD_KEY)
            key = (oid, row.pop("as_of", None)) if has_asof else oid
            opp[pos[key]][lst].append(row)
    return opp


def write_jsonl(records: Iterable[dict], path) -> None:
    """One JSON record a line, UTF-8, keys in contract order, ``\\n`` line ends."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")


def arrow_table(df: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:
        fields.append(pa.field(f.name, pa.date32()) if pa.types.is_timestamp(f.type) else
                      pa.field(f.name, f.type))
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def write_tables(tables: dict[str, pd.DataFrame], folder, fmt: str = "parquet") -> dict[str, Path]:
    """Write the contract's table form: ``<folder>/opportunities.<fmt>`` and the
    child tables.  Parquet: dates as DATE (date32), booleans and ints nullable.
    CSV: header row, ``true``/``false``, empty cell = unknown, ``YYYY-MM-DD``.
    Returns table name -> path."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in TABLES:
        if name not in tables:
            continue
        table = arrow_table(tables[name])
        path = folder / f"{name}.{fmt}"
        if fmt == "parquet":
            import pyarrow.parquet as pq
            pq.write_table(table, path, compression="zstd")
        else:
            import pyarrow.csv as pacsv
            pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=True, quoting_style="needed"))
        out[name] = path
    return out
