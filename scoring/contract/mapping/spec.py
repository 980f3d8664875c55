"""A mapping file (YAML) read and checked into a :class:`Mapping`.

The format is documented for its authors in ``docs/mappings.md``; in short::

    mapping: 1                           # the format's version
    name: Salesforce ...
    unknown: ["", "N/A", "--"]           # cell texts that mean "we don't know", in every column
    dates: ["%Y-%m-%d", "%m/%d/%Y"]      # strptime formats, tried in order
    booleans: {true: [Y, X], false: [N]} # besides the contract's true/yes/1 and false/no/0
    numbers: {thousands: ","}
    currency: {column: CurrencyIsoCode, default: USD, to: USD, rates: {EUR: 1.08}}
    opportunities:                       # and contacts, competitors, partners
      file: Opportunity.csv
      join: OpportunityId                # child tables: the column holding the deal's id
      columns:
        Name: name                       # a rename
        StageName:                       # a value map; an entry may set several fields
          to: stage
          values: {Prospecting: technical_promotion, Closed Won: {stage: bidding, outcome: won}}
        CloseDate: {to: expected_close, dates: ["%m/%d/%Y"]}
        Amount: {to: amount, currency: true, scale: 1000}
      ignore: [AccountId]                # columns known and deliberately unused
    history:                             # field-history exports, for derived fields
      changes: {file: OpportunityFieldHistory.csv, join: OpportunityId, field: Field,
                old: OldValue, new: NewValue, date: CreatedDate}
    derived:                             # in order; each fills a field the columns left unknown
      close_date_pushes: {count_later: {history: changes, field: CloseDate}}

Every mistake is a :class:`~scoring.errors.MappingError` naming the file and
the key, raised by :func:`load_mapping` before any export is read.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field as _dc_field
from pathlib import Path
from typing import Any, Mapping as _Map

from scoring.contract.schema import CHILD_KEY, CONTRACT
from scoring.contract.values import FALSE_WORDS, ID, OPPORTUNITY, TRUE_WORDS, Schema
from scoring.errors import MappingError

__all__ = ["FORMAT_VERSION", "TABLES", "DERIVED_KINDS", "Column", "Table", "History", "Derived", "Currency",
           "Mapping", "load_mapping", "fold"]

#: The version of the mapping format this code reads (``mapping: 1``).
FORMAT_VERSION = 1
#: Table keys of a mapping file -> the contract entity each fills.
TABLES: dict[str, str] = {"opportunities": OPPORTUNITY, "contacts": "contacts", "competitors": "competitors",
                          "partners": "partners"}
#: The kinds of derived field (see docs/mappings.md).
DERIVED_KINDS = ("count_later", "value_at", "latest_of", "copy")
_TOP = {"mapping", "name", "description", "encoding", "unknown", "dates", "booleans", "numbers", "currency",
        "history", "derived", *TABLES}
_TABLE_KEYS = {"file", "join", "columns", "ignore"}
_COLUMN_KEYS = {"to", "values", "dates", "scale", "currency"}
_HISTORY_KEYS = {"file", "join", "field", "old", "new", "date"}


def fold(text: str) -> str:
    """How a value-map key and a cell are compared: spaces trimmed, case ignored."""
    return text.strip().casefold()


@dataclass(frozen=True)
class Column:
    """One export column: the field it fills (``to``), its value map, and how its text is read."""

    source: str
    to: str
    #: folded export text -> {field: value (None = unknown)}; None when the column has no value map
    values: dict[str, dict[str, Any]] | None = None
    dates: tuple[str, ...] = ()
    scale: float | None = None
    currency: bool = False

    def targets(self) -> list[str]:
        """Every field this column may set, ``to`` first."""
        out = [self.to]
        for v in (self.values or {}).values():
            out.extend(k for k in v if k not in out)
        return out


@dataclass(frozen=True)
class Table:
    """One export file that fills a contract table."""

    key: str              # the mapping file's key: opportunities, contacts, ...
    entity: str           # the contract entity
    file: str
    join: str | None      # child tables: the export column holding the deal's id
    columns: tuple[Column, ...]
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class History:
    """A field-history export: one row per change of one field of one deal."""

    name: str
    file: str
    join: str
    field: str
    old: str
    new: str
    date: str


@dataclass(frozen=True)
class Derived:
    """A field computed after the columns (only where they left it unknown)."""

    field: str
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Currency:
    """Where a row's currency is, and the conversion of its amounts (``rates``: units of ``to`` per unit)."""

    column: str | None = None
    default: str | None = None
    to: str | None = None
    rates: dict[str, float] = _dc_field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    """A checked mapping file."""

    path: str
    name: str
    tables: dict[str, Table]                  # entity -> table; the opportunity table always
    history: dict[str, History]
    derived: tuple[Derived, ...]
    unknown: frozenset[str]                   # folded
    dates: tuple[str, ...]
    true_words: frozenset[str]                # folded
    false_words: frozenset[str]
    thousands: str | None
    currency: Currency | None
    encoding: str = "utf-8-sig"
    schema: Any = None

    @property
    def opportunities(self) -> Table:
        return self.tables[OPPORTUNITY]

    def column(self, entity: str, source: str) -> Column | None:
        return next((c for c in self.tables[entity].columns if c.source == source), None)


def load_mapping(path: str | Path, schema: Schema = CONTRACT) -> Mapping:
    """Read and check the mapping file ``path`` against ``schema`` (the contract, or a pack's).

    Raises
    ------
    MappingError
        Not valid YAML, an unknown key, a field the schema does not declare, a value
        a field cannot take, a derived field naming an unknown history, ... (the file and the key).
    FileNotFoundError
        No such file.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "m.yaml"
    >>> _ = p.write_text("mapping: 1\\nopportunities: {file: o.csv, columns: {Id: id, Stage: stage}}\\n")
    >>> load_mapping(p).opportunities.columns[1].to
    'stage'
    """
    from scoring.evidence.packfiles import PackYAMLError, _one_line, load_yaml  # the one bounded YAML reader
    import yaml

    path = Path(path)
    label = str(path)
    data = path.read_bytes()
    try:
        doc = load_yaml(data)
    except PackYAMLError as exc:
        raise MappingError(str(exc), file=label) from None
    except yaml.YAMLError as exc:
        raise MappingError(f"not valid YAML: {_one_line(exc)}", file=label) from None
    return _Reader(label, schema).mapping(doc)


class _Reader:
    def __init__(self, label: str, schema: Schema):
        self.label = label
        self.schema = schema

    def err(self, key: str, message: str) -> MappingError:
        return MappingError(message, file=self.label, key=key)

    def obj(self, v: Any, key: str, allowed: set[str] | None = None) -> dict:
        if not isinstance(v, dict):
            raise self.err(key, f"must be a mapping (key: value), not {_kind(v)}")
        for k in v:
            if not isinstance(k, str):
                raise self.err(key, f"key {k!r} must be text")
            if allowed is not None and k not in allowed:
                raise self.err(f"{key}.{k}" if key else k,
                               f"unknown key (expected one of {', '.join(sorted(allowed))})")
        return v

    def text(self, v: Any, key: str) -> str:
        if not isinstance(v, str) or not v.strip():
            raise self.err(key, f"must be non-empty text, not {_kind(v)}")
        return v

    def texts(self, v: Any, key: str, allow_empty: bool = False) -> list[str]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.err(key, f"must be a list of texts, not {_kind(v)}")
        if not allow_empty and any(not x.strip() for x in v):
            raise self.err(key, "holds an empty text")
        return v

    def mapping(self, doc: Any) -> Mapping:
        doc = self.obj(doc, "", _TOP)
        if doc.get("mapping") != FORMAT_VERSION:
            raise self.err("mapping", f"must be {FORMAT_VERSION} (the version of the mapping format), "
                                      f"not {doc.get('mapping')!r}")
        if "opportunities" not in doc:
            raise self.err("opportunities", "missing: the export file of the deals is required")
        dates = tuple(self.date_formats(doc.get("dates", ["%Y-%m-%d"]), "dates"))
        b = doc.get("booleans", {})
        if isinstance(b, dict):  # YAML reads a bare `true:` key as the boolean True
            b = {str(k).lower() if isinstance(k, bool) else k: v for k, v in b.items()}
        b = self.obj(b, "booleans", {"true", "false"})
        true_words = TRUE_WORDS | {fold(x) for x in self.texts(b.get("true", []), "booleans.true")}
        false_words = FALSE_WORDS | {fold(x) for x in self.texts(b.get("false", []), "booleans.false")}
        both = true_words & false_words
        if both:
            raise self.err("booleans", f"{', '.join(sorted(both))} cannot mean both true and false")
        nums = self.obj(doc.get("numbers", {}), "numbers", {"thousands"})
        thousands = nums.get("thousands")
        if thousands is not None and thousands not in (",", ".", " ", "'", "_"):
            raise self.err("numbers.thousands", "must be one of , . ' _ or a space")
        unknown = frozenset(fold(x) for x in self.texts(doc.get("unknown", [""]), "unknown", allow_empty=True)) \
            | {""}
        tables = {}
        for key, entity in TABLES.items():
            if key in doc:
                tables[entity] = self.table(doc[key], key, entity, dates)
        history = {name: self.history(h, f"history.{name}")
                   for name, h in self.obj(doc.get("history", {}), "history").items()}
        currency = self.currency(doc["currency"]) if "currency" in doc else None
        if currency is not None and currency.to is not None:
            amount_cols = [c for t in tables.values() for c in t.columns if c.currency]
            if not amount_cols:
                raise self.err("currency.to", "converts amounts, but no column says `currency: true`")
        derived = tuple(self.derived(doc.get("derived", {}), tables, history))
        enc = doc.get("encoding", "utf-8-sig")
        try:
            import codecs

            codecs.lookup(self.text(enc, "encoding"))
        except LookupError:
            raise self.err("encoding", f"unknown text encoding {enc!r}") from None
        ids = [c for c in tables[OPPORTUNITY].columns if ID in c.targets()]
        if not ids:
            raise self.err("opportunities.columns", "no column fills `id` (the deal's key)")
        return Mapping(path=self.label, name=str(doc.get("name", Path(self.label).stem)), tables=tables,
                       history=history, derived=derived, unknown=unknown, dates=dates, true_words=true_words,
                       false_words=false_words, thousands=thousands, currency=currency, encoding=enc,
                       schema=self.schema)

    def date_formats(self, v: Any, key: str) -> list[str]:
        out = self.texts(v, key)
        for f in out:
            try:
                _dt.datetime(2026, 1, 2, 3, 4, 5).strftime(f)
            except ValueError as e:
                raise self.err(key, f"{f!r} is not a date format: {e}") from None
            if "%" not in f:
                raise self.err(key, f"{f!r} is not a date format (strptime codes such as %Y-%m-%d)")
        return out

    def table(self, v: Any, key: str, entity: str, dates: tuple[str, ...]) -> Table:
        t = self.obj(v, key, _TABLE_KEYS)
        file = self.text(t.get("file"), f"{key}.file")
        if Path(file).name != file:
            raise self.err(f"{key}.file", f"{file!r} must be a file name inside the export folder, without folders")
        join = None
        if entity == OPPORTUNITY:
            if "join" in t:
                raise self.err(f"{key}.join", "the deals table has no join; its `id` column is the key")
        else:
            join = self.text(t.get("join"), f"{key}.join")
        cols_doc = self.obj(t.get("columns"), f"{key}.columns")
        columns = []
        fields = self.schema[entity]
        for src, spec in cols_doc.items():
            columns.append(self.column(src, spec, f"{key}.columns.{src}", entity, fields))
        ignore = frozenset(self.texts(t.get("ignore", []), f"{key}.ignore"))
        both = ignore & {c.source for c in columns}
        if both:
            raise self.err(f"{key}.ignore", f"{', '.join(sorted(both))} is both mapped and ignored")
        return Table(key=key, entity=entity, file=file, join=join, columns=tuple(columns), ignore=ignore)

    def target(self, name: Any, key: str, entity: str, fields: _Map) -> str:
        if not isinstance(name, str) or name not in fields:
            raise self.err(key, f"{name!r} is not a field of {entity} in the contract "
                                f"(fields: {', '.join(fields)})")
        if entity != OPPORTUNITY and name == CHILD_KEY:
            raise self.err(key, f"{CHILD_KEY} is filled from the table's `join` column")
        return name

    def value(self, v: Any, key: str, f: Any) -> Any:
        """A value-map entry's value, checked to fit field ``f`` (None: unknown)."""
        from scoring.contract.values import Bad, converters

        if v is None:
            return None
        if isinstance(v, (_dt.date, _dt.datetime)):
            v = v.isoformat()[:10]
        native = converters(f)[0]
        try:
            out = native(v)
        except Bad as e:
            raise self.err(key, f"{e.args[0]} (field {f.name} is {f.type})") from None
        return out

    def column(self, src: str, spec: Any, key: str, entity: str, fields: _Map) -> Column:
        if isinstance(spec, str):
            to = self.target(spec, key, entity, fields)
            return Column(source=src, to=to, dates=())
        spec = self.obj(spec, key, _COLUMN_KEYS)
        if "to" not in spec:
            raise self.err(key, "needs `to`: the field it fills (a value-map entry may set further fields)")
        to = self.target(spec["to"], f"{key}.to", entity, fields)
        values = None
        if "values" in spec:
            values = {}
            vals = spec["values"]
            if isinstance(vals, dict):
                for raw in vals:
                    if isinstance(raw, bool) or raw is None:
                        raise self.err(f"{key}.values.{raw}", "quote the export text: YAML reads Yes, No, On, Off, "
                                       "true, false and ~ unquoted as a boolean or nothing (write \"Yes\": ...)")
                vals = {str(k) if isinstance(k, (int, float)) else k: v for k, v in vals.items()}
            for raw, val in self.obj(vals, f"{key}.values").items():
                vkey = f"{key}.values.{raw}"
                if isinstance(val, dict):
                    sets = {}
                    for fname, fv in val.items():
                        t = self.target(fname, f"{vkey}.{fname}", entity, fields)
                        sets[t] = self.value(fv, f"{vkey}.{fname}", fields[t])
                else:
                    sets = {to: self.value(val, vkey, fields[to])}
                if fold(str(raw)) in values:
                    raise self.err(vkey, "the same export text (ignoring case and spaces) is mapped twice")
                values[fold(str(raw))] = sets
        ftype = fields[to].type
        dates = tuple(self.date_formats(spec["dates"], f"{key}.dates")) if "dates" in spec else ()
        if dates and ftype != "date":
            raise self.err(f"{key}.dates", f"only a date field reads dates; {to} is {ftype}")
        scale = spec.get("scale")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or
                                  not 0 < scale < 1e12):
            raise self.err(f"{key}.scale", "must be a positive number (e.g. 1000 for amounts in thousands)")
        if scale is not None and ftype not in ("number", "int"):
            raise self.err(f"{key}.scale", f"only a number is scaled; {to} is {ftype}")
        cur = spec.get("currency", False)
        if not isinstance(cur, bool):
            raise self.err(f"{key}.currency", "must be true or false")
        if cur and ftype != "number":
            raise self.err(f"{key}.currency", f"only an amount (a number) is converted; {to} is {ftype}")
        return Column(source=src, to=to, values=values, dates=dates, scale=scale, currency=cur)

    def history(self, v: Any, key: str) -> History:
        h = self.obj(v, key, _HISTORY_KEYS)
        missing = [k for k in sorted(_HISTORY_KEYS) if k not in h]
        if missing:
            raise self.err(key, f"missing {', '.join(missing)}")
        vals = {k: self.text(h[k], f"{key}.{k}") for k in _HISTORY_KEYS}
        if Path(vals["file"]).name != vals["file"]:
            raise self.err(f"{key}.file", "must be a file name inside the export folder, without folders")
        return History(name=key.split(".", 1)[1], **vals)

    def currency(self, v: Any) -> Currency:
        c = self.obj(v, "currency", {"column", "default", "to", "rates"})
        rates = {}
        for code, r in self.obj(c.get("rates", {}), "currency.rates").items():
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1e9:
                raise self.err(f"currency.rates.{code}", "must be a positive number (units of `to` per unit)")
            rates[code.strip().upper()] = float(r)
        to = self.text(c["to"], "currency.to").strip().upper() if "to" in c else None
        if to is not None:
            rates.setdefault(to, 1.0)
        if rates and to is None:
            raise self.err("currency.rates", "rates need `to`, the currency they convert into")
        column = self.text(c["column"], "currency.column") if "column" in c else None
        default = self.text(c["default"], "currency.default").strip().upper() if "default" in c else None
        if column is None and default is None:
            raise self.err("currency", "needs `column` (where each row's currency is) or `default`")
        return Currency(column=column, default=default, to=to, rates=rates)

    def derived(self, v: Any, tables: dict[str, Table], history: dict[str, History]) -> list[Derived]:
        out = []
        fields = self.schema[OPPORTUNITY]
        for name, spec in self.obj(v, "derived").items():
            key = f"derived.{name}"
            self.target(name, key, OPPORTUNITY, fields)
            spec = self.obj(spec, key, set(DERIVED_KINDS))
            if len(spec) != 1:
                raise self.err(key, f"needs exactly one kind: {', '.join(DERIVED_KINDS)}")
            (kind, p), = spec.items()
            k = f"{key}.{kind}"
            if kind in ("count_later", "value_at"):
                p = self.obj(p, k, {"history", "field", "values_of"} if kind == "value_at"
                             else {"history", "field"})
                hname = self.text(p.get("history"), f"{k}.history")
                if hname not in history:
                    raise self.err(f"{k}.history", f"{hname!r} is not under `history:`")
                self.text(p.get("field"), f"{k}.field")
                if kind == "count_later" and fields[name].type != "int":
                    raise self.err(k, f"counts fill a whole number; {name} is {fields[name].type}")
                if kind == "value_at":
                    vo = p.get("values_of")
                    col = next((c for c in tables[OPPORTUNITY].columns if c.source == vo), None)
                    if vo is not None and col is None:
                        raise self.err(f"{k}.values_of", f"{vo!r} is not a column of opportunities.columns")
                    if col is not None and name not in col.targets():
                        raise self.err(f"{k}.values_of", f"the column {vo!r} never sets {name}")
            elif kind == "latest_of":
                p = self.obj(p, k)
                p = {col: self.value(val, f"{k}.{col}", fields[name]) for col, val in p.items()}
                if not p:
                    raise self.err(k, "names no column")
            else:  # copy
                p = self.obj(p, k, {"field", "shift_days", "when_known"})
                src = self.target(p.get("field"), f"{k}.field", OPPORTUNITY, fields)
                if fields[src].type != fields[name].type:
                    raise self.err(f"{k}.field", f"{src} is {fields[src].type}, {name} is {fields[name].type}")
                sd = p.get("shift_days", 0)
                if isinstance(sd, bool) or not isinstance(sd, int) or abs(sd) > 3660:
                    raise self.err(f"{k}.shift_days", "must be a whole number of days")
                if sd and fields[name].type != "date":
                    raise self.err(f"{k}.shift_days", f"only a date is shifted; {name} is {fields[name].type}")
                if "when_known" in p:
                    self.target(p["when_known"], f"{k}.when_known", OPPORTUNITY, fields)
            out.append(Derived(field=name, kind=kind, params=dict(p)))
        return out


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(v), type(v).__name__)


