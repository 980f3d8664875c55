"""The store's tables and views, and the migrations between schema versions (docs/store.md).

Written once in SQL both engines run; ``{double}``, ``{doubles}``, ``{text}``... are the
engine's type names (:attr:`scoring.store.backends.Backend.types`).

``store_schema``  one row: the schema version the store was written with
``runs``          one row per ``scoring score`` run
``run_rules``     a run's rule list: ``pos`` (1-based) is the rule's place in ``status`` and ``contributions``
``deal_scores``   one row per deal and run: probability, rule score, every rule's status (one digit per
                  rule: ``0`` missing, ``1`` met, ``2`` unknown, in the run's rule order), the measures
                  (when the evaluation has them, NaN = unknown) and the model's contributions
                  (log-odds per rule, then the stage's, as 32-bit floats: ``runs.intercept + sum`` is
                  ``logit`` to about 1e-6; ``logit`` itself is 64-bit), and the values of the model's
                  derived-fact inputs (``runs.derived`` names them; null for a model without any)
``outcomes``      closed deals: outcome and close date (``scoring outcomes``; version 2)
``deal_rules``    view: one row per deal, run and rule (status word and contribution), for BI tools

A store of an older version is refused with the command that upgrades it (``scoring store
upgrade``, which applies :data:`MIGRATIONS` in order, in one transaction).
"""
from __future__ import annotations

#: the version this code writes and reads
SCHEMA_VERSION = 3

#: statements that create a store of version 1
_V1 = [
    "CREATE TABLE store_schema (version {int} NOT NULL)",
    """CREATE TABLE runs (
        run_id {text} PRIMARY KEY, as_of {date} NOT NULL, scored_at {text} NOT NULL, model_version {text},
        rule_pack_version {text} NOT NULL, input_fingerprint {text}, n_read {bigint}, n_scored {bigint},
        n_rejected {bigint}, rules {text} NOT NULL, measures {text} NOT NULL, intercept {double},
        summary {text})""",
    "CREATE TABLE run_rules (run_id {text} NOT NULL, pos {int} NOT NULL, rule_id {text} NOT NULL, kind {text})",
    """CREATE TABLE deal_scores (
        run_id {text} NOT NULL, deal_id {text} NOT NULL, as_of {date}, stage {text}, win_probability {double},
        logit {double}, rule_score {double}, data_completeness {double}, red_flags {text}, expected_close {text},
        close_date_pushes {bigint}, status {text} NOT NULL, measures {doubles}, contributions {floats})""",
    """CREATE VIEW deal_rules AS
        SELECT d.run_id, d.deal_id, d.as_of, r.rule_id, r.kind,
               CASE substr(d.status, r.pos, 1) WHEN '1' THEN 'met' WHEN '2' THEN 'unknown' ELSE 'missing' END
                   AS status,
               d.contributions[r.pos] AS contribution
        FROM deal_scores d JOIN run_rules r ON r.run_id = d.run_id""",
    "INSERT INTO store_schema (version) VALUES (1)",
]

#: version -> statements that take a store of ``version - 1`` to ``version``
MIGRATIONS: dict[int, list[str]] = {
    2: [
        """CREATE TABLE outcomes (deal_id {text} PRIMARY KEY, outcome {text} NOT NULL, closed_at {date} NOT NULL,
            recorded_at {text} NOT NULL)""",
        "UPDATE store_schema SET version = 2",
    ],
    3: [  # the model's derived-fact inputs (a model trained with --derived), so its what-changed can be split
        "ALTER TABLE runs ADD COLUMN derived {text}",
        "ALTER TABLE deal_scores ADD COLUMN derived {doubles}",
        "UPDATE store_schema SET version = 3",
    ],
}

#: indexes, PostgreSQL only: a deal's history and a run's rows are index look-ups there.  DuckDB
#: needs none (its zone maps prune the scan), and an index would slow every night's bulk append.
PG_INDEXES = [
    "CREATE INDEX IF NOT EXISTS deal_scores_deal ON deal_scores (deal_id, as_of)",
    "CREATE INDEX IF NOT EXISTS deal_scores_run ON deal_scores (run_id)",
    "CREATE INDEX IF NOT EXISTS run_rules_run ON run_rules (run_id)",
]


def statements(types: dict[str, str], upto: int = SCHEMA_VERSION, start: int = 0) -> list[str]:
    """The statements taking a store from version ``start`` (0: empty) to ``upto``, in ``types``."""
    out = list(_V1) if start == 0 else []
    for v in range(max(start, 1) + 1, upto + 1):
        out += MIGRATIONS[v]
    return [s.format(**types) for s in out]
