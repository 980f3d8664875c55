"""Deals in column form: the frames every evaluation reads.

``Frames.opps`` holds one row per deal (``RangeIndex``); ``Frames.children``
one table per child entity with the integer column ``_row`` (position of the
deal in ``opps``) and the child fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.contract.columns import text_array
from scoring.contract.schema import CHILD_LISTS, Field

#: Column of a child table holding the position of its deal in ``Frames.opps``.
ROW = "_row"


@dataclass
class Frames:
    """A chunk of deals in column form (see the module docstring for dtypes).

    Attributes
    ----------
    opps : DataFrame
        One row per deal, ``RangeIndex(0, n)``.
    children : dict
        ``contacts`` / ``competitors`` / ``partners`` -> DataFrame with an int
        column ``_row`` (position of the deal in ``opps``) and the child fields.
        A table missing here means no deal has such children.
    absent : frozenset
        The child tables the input did not have at all (a table-form input without a
        ``contacts`` file): those lists are unknown for every deal, not "none recorded"
        (an empty or missing list of a nested record is "none recorded": the contract).
    """

    opps: pd.DataFrame
    children: dict[str, pd.DataFrame] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.opps)


# --------------------------------------------------------------------------- records -> frames
def _column(values: list, ftype: str, dates: str) -> Any:
    """One column of validated values as the pandas array of its Frames dtype."""
    if ftype in ("bool", "int", "number"):
        na = np.fromiter((v is None for v in values), bool, len(values))
        if ftype == "bool":
            return pd.arrays.BooleanArray(np.fromiter((v is True for v in values), bool, len(values)), na)
        if ftype == "int":
            return pd.arrays.IntegerArray(np.array([0 if v is None else v for v in values], dtype=np.int64), na)
        return pd.arrays.FloatingArray(np.array([0.0 if v is None else v for v in values], dtype=np.float64), na)
    return text_array(pa.array(values, pa.large_string()), ftype, dates)


def records_to_frames(records: Sequence[Mapping[str, Any]], fields: Mapping[str, Mapping[str, Field]],
                      *, dates: str = "text") -> Frames:
    """Convert validated nested records (:func:`scoring.contract.nested.validate_record`)
    to the column form the evaluator reads, with the dtypes of the table form's frames.

    ``fields`` is entity -> field name -> Field (e.g. a rule pack's ``fields``):
    every listed opportunity field (plus ``id`` and ``as_of``) becomes a
    column, each listed child field a column of its child table; every child
    entity has a table.  ``dates="datetime64"`` makes date columns ``datetime64[s]``.
    """
    opp_fields = dict(fields.get("opportunity", {}))
    cols: dict[str, Any] = {}
    for name in ("id", "as_of"):
        if name not in opp_fields:
            cols[name] = _column([r.get(name) for r in records], "date" if name == "as_of" else "string", dates)
    for name, f in opp_fields.items():
        cols[name] = _column([r.get(name) for r in records], f.type, dates)
    opps = pd.DataFrame(cols, index=pd.RangeIndex(len(records)))
    children: dict[str, pd.DataFrame] = {}
    for lst in dict.fromkeys([*CHILD_LISTS, *(e for e in fields if e != "opportunity")]):
        rows: list[int] = []
        items: list[Mapping] = []
        for i, r in enumerate(records):
            its = r.get(lst) or ()
            if its:
                rows.extend([i] * len(its))
                items.extend(its)
        ccols: dict[str, Any] = {ROW: np.asarray(rows, dtype=np.int64)}
        for name, f in fields.get(lst, {}).items():
            ccols[name] = _column([it.get(name) for it in items], f.type, dates)
        children[lst] = pd.DataFrame(ccols, index=pd.RangeIndex(len(items)))
    return Frames(opps=opps, children=children)
