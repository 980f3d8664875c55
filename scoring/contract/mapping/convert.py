"""Reading a CRM export and converting it, by a :class:`~scoring.contract.mapping.spec.Mapping`, into the
contract's table form (CSV text), which the one contract reader then validates.

The conversion never decides whether a row is good: it writes what it could
convert in the contract's spelling and leaves every text it could not convert
as it was, so that the contract reader rejects that row with the field and the
reason (``'Bidding?' is not one of technical_promotion, ...``), as it rejects
any bad record.  Nothing is dropped: the output has one row per export row, in
the export's order, so the contract reader's row numbers are the export's
(the first row under the header is row 1).

* :func:`read_export_table` reads one export file (every cell as text);
* :func:`read_export` reads the files a mapping names;
* :func:`convert` converts them (:class:`Conversion`: the tables and the findings);
* :func:`write_tables` writes the tables atomically into a folder;
* :func:`map_export` does the three; :func:`check_export` also runs the contract
  reader over the result (a dry run: :class:`CheckReport`);
* :func:`mapped_input` converts into a temporary folder for any reader of the
  contract (``score --mapping``, ``train --mapping``).
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import os
import re
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field as _dc_field
from pathlib import Path
from typing import Any, Iterator

from scoring.contract.mapping.spec import Column, Mapping, Table, fold
from scoring.contract.schema import CHILD_KEY, CONTRACT
from scoring.contract.values import AS_OF, ID, NUM_PATTERN, OPPORTUNITY, Bad, Schema, converters
from scoring.errors import ScoringError

__all__ = ["ExportTable", "Findings", "Conversion", "CheckReport", "read_export_table", "read_export", "convert",
           "write_tables", "map_export", "check_export", "mapped_input", "TABLE_FILES"]

#: contract entity -> the file name of its table in the contract's table form
TABLE_FILES = {OPPORTUNITY: "opportunities", "contacts": "contacts", "competitors": "competitors",
               "partners": "partners"}
_NUM_RE = re.compile(NUM_PATTERN)
#: distinct bad values a finding keeps per column (their counts are all kept in ``bad_value_rows``)
MAX_VALUES_SHOWN = 20


@dataclass
class ExportTable:
    """One export file: its header and its rows, every cell as text (a row may be shorter or longer)."""

    path: Path
    names: list[str]
    rows: list[list[str]]

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@dataclass
class Findings:
    """What a conversion noticed (a dry run lists it; ``map`` prints a count).

    ``unmapped_columns``: file -> export columns neither mapped nor ignored.
    ``missing_columns``: file -> mapped columns the file does not have (their fields are unknown).
    ``bad_values``: (file, column) -> Counter of export texts the field cannot take (after the value
    map and the mapping's reading rules); their rows are rejected by the contract reader.
    ``unlisted_values``: (file, column) -> Counter of texts of a text field's value-mapped column
    that the map does not list (kept as written).
    ``history_values``: (file, column) -> Counter of history texts a derived field could not read
    (dates that match no format; the change is left out).
    ``no_rate``: currency code -> rows whose amount could not be converted (no rate; kept in their own
    currency).  ``ragged_rows``: (file, row, cells, header cells) of rows of another length.
    """

    unmapped_columns: dict[str, list[str]] = _dc_field(default_factory=dict)
    missing_columns: dict[str, list[str]] = _dc_field(default_factory=dict)
    bad_values: dict[tuple[str, str], Counter] = _dc_field(default_factory=dict)
    unlisted_values: dict[tuple[str, str], Counter] = _dc_field(default_factory=dict)
    history_values: dict[tuple[str, str], Counter] = _dc_field(default_factory=dict)
    no_rate: Counter = _dc_field(default_factory=Counter)
    ragged_rows: list[tuple[str, int, int, int]] = _dc_field(default_factory=list)

    def count(self) -> int:
        return (sum(map(len, self.unmapped_columns.values())) + sum(map(len, self.missing_columns.values()))
                + len(self.bad_values) + len(self.unlisted_values) + len(self.history_values) + len(self.no_rate)
                + len(self.ragged_rows))


@dataclass
class Conversion:
    """The contract tables made from an export: entity -> (column names, rows of text; "" = unknown)."""

    tables: dict[str, tuple[list[str], list[list[str]]]]
    findings: Findings

    @property
    def n_deals(self) -> int:
        return len(self.tables[OPPORTUNITY][1])


@dataclass
class CheckReport:
    """A dry run: the conversion's findings and what the contract reader would reject."""

    findings: Findings
    n_deals: int
    rejects: list[dict]
    orphans: list[dict]
    undeclared_fields: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not (self.findings.count() or self.rejects or self.orphans)


# --------------------------------------------------------------------------- reading the export
def read_export_table(path: str | Path, encoding: str = "utf-8-sig") -> ExportTable:
    """Read one CSV export file, every cell as text (a byte-order mark is dropped with ``utf-8-sig``).

    Raises
    ------
    ScoringError
        The file is not text in ``encoding`` (naming the line), has no header, or repeats a column name.
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ScoringError(f"{path}: line {line}: not {encoding} text ({e.reason}); "
                           "set `encoding:` in the mapping (e.g. cp1252 for an Excel export)") from None
    reader = csv.reader(io.StringIO(text, newline=""))  # newlines inside quoted cells stay in their cell
    try:
        rows = [r for r in reader]
    except csv.Error as e:
        raise ScoringError(f"{path}: line {reader.line_num}: not CSV: {e}") from None
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise ScoringError(f"{path}: no header (an empty file)")
    names = [n.strip() for n in rows[0]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScoringError(f"{path}: the header repeats {', '.join(map(repr, dup))}; rename one")
    return ExportTable(path, names, rows[1:])


def read_export(mapping: Mapping, folder: str | Path) -> dict[str, ExportTable]:
    """The files ``mapping`` names in the export ``folder``: table key (``opportunities``, ``contacts``, ...)
    or ``history.NAME`` -> :class:`ExportTable`.

    Raises
    ------
    ScoringError
        A file the mapping names is not in ``folder`` (naming the mapping's key), or cannot be read as CSV.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ScoringError(f"{folder}: not a folder (give the folder holding the export's files)")
    wanted = [(t.key, t.file) for t in mapping.tables.values()] + \
             [(f"history.{h.name}", h.file) for h in mapping.history.values()]
    out = {}
    for key, file in wanted:
        p = folder / file
        if not p.is_file():
            raise ScoringError(f"{p}: no such file (named by {key}.file of the mapping {mapping.path})")
        out[key] = read_export_table(p, mapping.encoding)
    return out


# --------------------------------------------------------------------------- reading one cell
class _Cells:
    """The mapping's reading rules for one value, each defined once here."""

    def __init__(self, m: Mapping, schema: Schema):
        self.m = m
        self.schema = schema
        self.text_conv = {(ent, n): converters(f)[1] for ent, fl in schema.items() for n, f in fl.items()}

    def unknown(self, t: str) -> bool:
        return fold(t) in self.m.unknown

    def date(self, t: str, formats: tuple[str, ...]) -> _dt.datetime | None:
        """The time written in ``t`` (the column's ``formats``, else the mapping's), as written: a time
        zone is dropped, not converted (so that every time compares with every other)."""
        for f in formats or self.m.dates:
            try:
                return _dt.datetime.strptime(t, f).replace(tzinfo=None)
            except ValueError:
                continue
        return None

    def number(self, t: str) -> float | None:
        s = t.replace(self.m.thousands, "") if self.m.thousands else t
        if self.m.thousands != " ":
            s = s.replace(" ", "")
        return float(s) if _NUM_RE.fullmatch(s) else None

    def typed(self, entity: str, name: str, t: str, col: Column | None) -> str:
        """The contract's text of export text ``t`` for field ``name``, or ``t`` itself when it cannot be read."""
        f = self.schema[entity][name]
        if f.type == "date":
            d = self.date(t, col.dates if col else ())
            return d.date().isoformat() if d is not None else t
        if f.type == "bool":
            w = fold(t)
            return "true" if w in self.m.true_words else "false" if w in self.m.false_words else t
        if f.type in ("int", "number"):
            x = self.number(t)
            if x is None:
                return t
            if col is not None and col.scale:
                x *= col.scale
            return number_text(x) if f.type == "number" or x.is_integer() else t
        if f.type == "enum":
            w = fold(t)
            return next((v for v in f.values if v == w or v == w.replace(" ", "_")), t)
        return t.strip()


def number_text(x: float) -> str:
    """A number as the contract's CSV text: ``1850000``, ``0.5`` (never ``1850000.0``)."""
    x = round(float(x), 6)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _value_text(v: Any) -> str:
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float):
        return number_text(v)
    return str(v)


# --------------------------------------------------------------------------- converting
def convert(mapping: Mapping, export: dict[str, ExportTable]) -> Conversion:
    """Convert an export (:func:`read_export`) into the contract's tables; see the module docstring.

    Raises
    ------
    ScoringError
        A child table or a history without a column the mapping joins or reads by (naming the key).
    """
    schema = mapping.schema or CONTRACT
    cells = _Cells(mapping, schema)
    findings = Findings()
    tables = {entity: _convert_table(mapping, t, export[t.key], cells, findings, entity)
              for entity, t in mapping.tables.items()}
    if mapping.derived:
        _Derived(mapping, export, cells, findings).fill(*tables[OPPORTUNITY])
    return Conversion(tables, findings)


def _ragged(ex: ExportTable, k: int) -> bool:
    return len(ex.rows[k]) != len(ex.names)


def _cell(row: list[str], i: int | None) -> str:
    return row[i] if i is not None and i < len(row) else ""


def _convert_table(m: Mapping, t: Table, ex: ExportTable, cells: _Cells, findings: Findings,
                   entity: str) -> tuple[list[str], list[list[str]]]:
    idx = ex.index()
    file = ex.path.name
    wanted = [c.source for c in t.columns] + ([t.join] if t.join else [])
    if entity == OPPORTUNITY:  # the currency column and the date columns of `latest_of` are read too
        if m.currency is not None and m.currency.column:
            wanted.append(m.currency.column)
        wanted.extend(col for d in m.derived if d.kind == "latest_of" for col in d.params)
    unmapped = [n for n in ex.names if n not in wanted and n not in t.ignore]
    if unmapped:
        findings.unmapped_columns[file] = unmapped
    missing = [c for c in wanted if c not in idx]
    if missing:
        findings.missing_columns[file] = missing
    if t.join and t.join not in idx:
        raise ScoringError(f"{ex.path}: no column {t.join!r} (named by {t.key}.join of the mapping {m.path}); "
                           "the rows cannot be joined to their deals")
    # output columns: the key first, then the fields in the order the columns name them
    names: list[str] = [CHILD_KEY] if t.join else [ID]
    for c in t.columns:
        names.extend(f for f in c.targets() if f not in names)
    cur = m.currency if entity == OPPORTUNITY else None
    if cur is not None and "currency" not in names:
        names.append("currency")
    pos = {n: i for i, n in enumerate(names)}
    width = len(ex.names)
    rows = []
    amount_fields = {c.to for c in t.columns if c.currency}
    for k, raw in enumerate(ex.rows):
        out = [""] * len(names)
        if len(raw) != width:
            findings.ragged_rows.append((file, k + 1, len(raw), width))
            key = _cell(raw, idx[t.join]) if t.join else _cell(raw, idx.get(next(c.source for c in t.columns
                                                                                   if ID in c.targets())))
            rows.append([key.strip()])  # cut short: the contract reader rejects it as a short row
            continue
        if t.join:
            out[0] = raw[idx[t.join]].strip()
        for c in t.columns:
            i = idx.get(c.source)
            if i is None:
                continue
            for f, v in _read_column(c, raw[i], entity, cells, findings, file).items():
                if out[pos[f]] == "" and v != "":
                    out[pos[f]] = v
        if cur is not None:
            code = _cell(raw, idx.get(cur.column)).strip().upper() if cur.column else ""
            if code == "" or cells.unknown(code):
                code = cur.default or ""
            converted = code
            if cur.to is not None and code:
                rate = cur.rates.get(code)
                has_amount = any(out[pos[a]] != "" for a in amount_fields)
                if rate is None:
                    if has_amount:
                        findings.no_rate[code] += 1
                else:
                    converted = cur.to
                    for a in amount_fields:
                        x = cells.number(out[pos[a]]) if out[pos[a]] else None
                        if x is not None:
                            out[pos[a]] = number_text(x * rate)
            if code:
                out[pos["currency"]] = converted
        rows.append(out)
    return names, rows


def _read_column(c: Column, text: str, entity: str, cells: _Cells, findings: Findings, file: str,
                 label: str | None = None) -> dict[str, str]:
    """The fields one export cell of column ``c`` sets (contract text; "" = unknown); a finding names
    ``file`` and ``label`` (default: the column)."""
    t = text.strip()
    if cells.unknown(t):
        return {}
    where = (file, label or c.source)
    if c.values is not None:
        hit = c.values.get(fold(t))
        if hit is not None:
            return {f: _value_text(v) for f, v in hit.items()}
    out = cells.typed(entity, c.to, t, c)
    try:
        cells.text_conv[(entity, c.to)](out)
    except Bad:
        findings.bad_values.setdefault(where, Counter())[t] += 1
    else:
        if c.values is not None and cells.schema[entity][c.to].type == "string":
            findings.unlisted_values.setdefault(where, Counter())[t] += 1
    return {c.to: out}


class _Derived:
    """The derived fields of the mapping, filled deal by deal where the columns left them unknown."""

    def __init__(self, m: Mapping, export: dict[str, ExportTable], cells: _Cells, findings: Findings):
        self.m, self.cells, self.findings = m, cells, findings
        self.ex = export[m.opportunities.key]
        self.idx = self.ex.index()
        id_col = next(c for c in m.opportunities.columns if ID in c.targets())
        self.keys = [_cell(r, self.idx.get(id_col.source)).strip() for r in self.ex.rows]
        self.history: dict[str, tuple[ExportTable, dict[str, int], dict[str, list[int]]]] = {}
        for name, h in m.history.items():
            hx = export[f"history.{name}"]
            hidx = hx.index()
            for what in ("join", "field", "old", "new", "date"):
                if getattr(h, what) not in hidx:
                    raise ScoringError(f"{hx.path}: no column {getattr(h, what)!r} (named by history.{name}.{what} "
                                       f"of the mapping {m.path})")
            by_deal: dict[str, list[int]] = defaultdict(list)
            for j, r in enumerate(hx.rows):
                if len(r) != len(hx.names):
                    findings.ragged_rows.append((hx.path.name, j + 1, len(r), len(hx.names)))
                    continue
                by_deal[r[hidx[h.join]].strip()].append(j)
            self.history[name] = (hx, hidx, by_deal)
        self._sorted: dict[tuple[str, str, int], list[tuple[_dt.datetime, int]]] = {}

    def fill(self, names: list[str], rows: list[list[str]]) -> None:
        pos = {n: i for i, n in enumerate(names)}
        for d in self.m.derived:
            if d.field not in pos:
                pos[d.field] = len(names)
                names.append(d.field)
        for k, row in enumerate(rows):
            if _ragged(self.ex, k):
                continue  # a ragged export row stays cut short, for the contract reader to reject
            row.extend([""] * (len(names) - len(row)))
            for d in self.m.derived:
                if row[pos[d.field]] == "":
                    row[pos[d.field]] = getattr(self, d.kind)(d, row, pos, k)

    def copy(self, d, row: list[str], pos: dict[str, int], k: int) -> str:
        p = d.params
        w = p.get("when_known")
        if w is not None and (w not in pos or row[pos[w]] == ""):
            return ""
        src = row[pos[p["field"]]] if p["field"] in pos else ""
        if src == "" or not p.get("shift_days"):
            return src
        try:
            return (_dt.date.fromisoformat(src) + _dt.timedelta(days=p["shift_days"])).isoformat()
        except (ValueError, OverflowError):
            return ""  # the source itself is bad: its own field rejects the row

    def latest_of(self, d, row: list[str], pos: dict[str, int], k: int) -> str:
        best = None
        for col, val in d.params.items():
            t = _cell(self.ex.rows[k], self.idx.get(col)).strip()
            if self.cells.unknown(t):
                continue
            when = self.cells.date(t, ())
            if when is None:
                self.findings.bad_values.setdefault((self.ex.path.name, col), Counter())[t] += 1
                continue
            if best is None or when > best[0]:
                best = (when, val)
        return "" if best is None else _value_text(best[1])

    def _changes(self, d, row: list[str], pos: dict[str, int], k: int):
        """The history of ``d`` and the deal's changes of ``d``'s field as ``(time, row)``, in time order, up to
        the row's ``as_of`` when it is known (a snapshot sees no later change); changes are None when the
        deal has no history row at all (its history was not tracked)."""
        h = self.m.history[d.params["history"]]
        hx, hidx, by_deal = self.history[h.name]
        mine = by_deal.get(self.keys[k])
        if not mine:
            return h, hx, hidx, None, None
        key = (h.name, d.params["field"], k)
        changes = self._sorted.get(key)
        if changes is None:  # once per deal and field: an unreadable time is one finding
            changes = self._sorted[key] = sorted(
                (t, j) for j in mine if hx.rows[j][hidx[h.field]].strip() == d.params["field"]
                for t in [self._when(hx, j, hidx, h.date)] if t is not None)
        as_of = row[pos[AS_OF]] if AS_OF in pos else ""
        cut = None
        if as_of:
            try:
                cut = _dt.date.fromisoformat(as_of)
            except ValueError:
                cut = None  # a bad as_of rejects the row by itself
        return h, hx, hidx, changes, cut

    def count_later(self, d, row: list[str], pos: dict[str, int], k: int) -> str:
        h, hx, hidx, changes, cut = self._changes(d, row, pos, k)
        if changes is None:
            return ""  # no history at all for this deal: not tracked, so unknown (not 0)
        n = 0
        for t, j in changes:
            if cut is not None and t.date() > cut:
                break
            old, new = self._when(hx, j, hidx, h.old), self._when(hx, j, hidx, h.new)
            if old is not None and new is not None and new.date() > old.date():
                n += 1
        return str(n)

    def value_at(self, d, row: list[str], pos: dict[str, int], k: int) -> str:
        h, hx, hidx, changes, cut = self._changes(d, row, pos, k)
        if not changes:
            return ""
        before = [j for t, j in changes if cut is None or t.date() <= cut]
        if before:  # the value the last change up to as_of set
            text = hx.rows[before[-1]][hidx[h.new]]
        else:  # every change is later: the value before the first of them
            text = hx.rows[changes[0][1]][hidx[h.old]]
        col = self.m.column(OPPORTUNITY, d.params["values_of"]) if d.params.get("values_of") else None
        if col is not None:
            label = h.new if before else h.old
            return _read_column(col, text, OPPORTUNITY, self.cells, self.findings, hx.path.name, label).get(d.field, "")
        t = text.strip()
        return "" if self.cells.unknown(t) else self.cells.typed(OPPORTUNITY, d.field, t, None)

    def _when(self, hx: ExportTable, j: int, hidx: dict[str, int], column: str) -> _dt.datetime | None:
        """The time in a history cell (None: unknown, or unreadable, which is a finding)."""
        t = hx.rows[j][hidx[column]].strip()
        if self.cells.unknown(t):
            return None
        when = self.cells.date(t, ())
        if when is None:
            self.findings.history_values.setdefault((hx.path.name, column), Counter())[t] += 1
        return when


# --------------------------------------------------------------------------- writing
def write_tables(conv: Conversion, folder: str | Path) -> list[Path]:
    """Write the contract tables of ``conv`` as CSV into ``folder`` (created if needed), each file
    atomically (a temporary ``.NAME.tmp-<pid>`` renamed into place once all are written).

    Raises
    ------
    ScoringError
        ``folder`` holds a contract table this conversion does not write (of another format, or a
        child table the mapping has no file for): it would be read with the new tables.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    targets = {folder / f"{TABLE_FILES[e]}.csv": t for e, t in conv.tables.items()}
    for stem in TABLE_FILES.values():
        for suffix in (".csv", ".parquet"):
            p = folder / f"{stem}{suffix}"
            if p.exists() and p not in targets:
                raise ScoringError(f"{p}: a contract table this mapping does not write; it would be read with "
                                   "the new tables: remove it, or write into another folder")
    temps = []
    try:
        for path, (names, rows) in targets.items():
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            temps.append((tmp, path))
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(names)
                w.writerows(rows)
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if tmp.exists():
                tmp.unlink()
    return list(targets)


def map_export(mapping: Mapping, export_dir: str | Path, out_dir: str | Path) -> Conversion:
    """Read, convert and write: the contract's table form of ``export_dir`` in ``out_dir``.

    Raises
    ------
    ScoringError
        As :func:`read_export` and :func:`write_tables`, and when a table would be written over an
        export file (an export whose file is named ``opportunities.csv``, written into its own folder).
    """
    export = read_export(mapping, export_dir)
    inputs = {t.path.resolve() for t in export.values()}
    for entity in mapping.tables:
        target = (Path(out_dir) / f"{TABLE_FILES[entity]}.csv").resolve()
        if target in inputs:
            raise ScoringError(f"{target}: it is a file of the export; write the contract tables into another folder")
    conv = convert(mapping, export)
    write_tables(conv, out_dir)
    return conv


def check_export(mapping: Mapping, export_dir: str | Path, schema: Schema | None = None) -> CheckReport:
    """A dry run: convert ``export_dir`` and read the result with the contract reader (in a temporary
    folder), so the rejects are exactly those a run would have."""
    from scoring.contract.reader import read_records

    conv = convert(mapping, read_export(mapping, export_dir))
    with tempfile.TemporaryDirectory(prefix="dealscore-map-") as tmp:
        write_tables(conv, tmp)
        res = read_records(tmp, schema or mapping.schema or CONTRACT)
    rejects = [{**r, "reason": rename_tables(str(r.get("reason")), mapping)} for r in res.rejects]
    files = {e: t.file for e, t in mapping.tables.items()}
    orphans = [{**o, "table": files.get(o.get("table"), o.get("table"))} for o in res.orphans]
    return CheckReport(conv.findings, conv.n_deals, rejects, orphans, res.undeclared_fields)


@contextlib.contextmanager
def mapped_input(mapping: str | Path | Mapping, export_dir: str | Path,
                 schema: Schema | None = None) -> Iterator[tuple[Path, Conversion]]:
    """The export converted into a temporary folder of contract tables, for any reader of the contract
    (a batch run, training): ``with mapped_input("salesforce.yaml", "export/") as (folder, conv): ...``.
    The folder is removed on exit.  ``mapping`` is a path (loaded against ``schema``) or a loaded Mapping."""
    from scoring.contract.mapping.spec import load_mapping

    m = mapping if isinstance(mapping, Mapping) else load_mapping(mapping, schema or CONTRACT)
    conv = convert(m, read_export(m, export_dir))
    with tempfile.TemporaryDirectory(prefix="dealscore-mapped-") as tmp:
        write_tables(conv, tmp)
        yield Path(tmp), conv


def rename_tables(reason: str, mapping: Mapping) -> str:
    """A contract reader's reason with the contract's table names (``contacts.csv row 2``) turned back
    into the export's file names (``OpportunityContactRole.csv row 2``)."""
    for entity, t in mapping.tables.items():
        reason = reason.replace(f"({TABLE_FILES[entity]}.csv row ", f"({t.file} row ")
    return reason
