"""The opportunity data contract as data: every field, its type and its allowed values.

Rule packs may
declare further fields of their own (see :mod:`scoring.evidence.pack`), but they can
never change the type of a field listed here.

Types
-----
``string``  free text
``enum``    one of ``values`` (lower-case words; ``none`` is a value, never a null)
``bool``    true / false
``int``     whole number, ``>= min`` (and ``<= max_field`` when given)
``number``  real number, ``>= min``
``date``    calendar date, ``YYYY-MM-DD``
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

STAGES: tuple[str, ...] = (
    "technical_promotion",
    "relationship",
    "partner",
    "solution",
    "bidding",
)
STAGE_INDEX: dict[str, int] = {s: i for i, s in enumerate(STAGES)}

#: Child tables of an opportunity, in the nested form each is a list field.
CHILD_LISTS: tuple[str, ...] = ("contacts", "competitors", "partners")

OUTCOMES: tuple[str, ...] = ("won", "lost", "no_decision")

FIELD_TYPES: tuple[str, ...] = ("string", "enum", "bool", "int", "number", "date")


@dataclass(frozen=True)
class Field:
    """One declared field of a record or of a child row."""

    name: str
    type: str
    values: tuple[str, ...] = ()
    min: float | None = None
    max_field: str | None = None  # e.g. site_visits_accompanied <= site_visits
    required: bool = False
    meaning: str = ""

    def to_dict(self) -> dict:
        out: dict = {"type": self.type}
        if self.values:
            out["values"] = list(self.values)
        if self.min is not None:
            out["min"] = self.min
        if self.required:
            out["required"] = True
        return out


def _f(name, type_, meaning="", **kw) -> Field:
    if type_ in ("int", "number") and "min" not in kw:
        kw["min"] = 0
    if "values" in kw:
        kw["values"] = tuple(kw["values"])
    return Field(name=name, type=type_, meaning=meaning, **kw)


_LOW_HIGH = ("low", "high")
_LMH = ("low", "medium", "high")

OPPORTUNITY_FIELDS: tuple[Field, ...] = (
    _f("id", "string", "unique per snapshot date", required=True),
    _f("stage", "enum", "current stage (S1..S5)", values=STAGES, required=True),
    _f("name", "string"),
    _f("account", "string"),
    _f("region", "string"),
    _f("industry", "string"),
    _f("product_line", "string"),
    _f("owner", "string"),
    _f("amount", "number", "expected deal value"),
    _f("currency", "string", "ISO code"),
    _f("created_at", "date"),
    _f("stage_entered_at", "date"),
    _f("expected_close", "date"),
    _f("as_of", "date", "when this snapshot was taken; default: today"),
    _f("close_date_pushes", "int", "T2"),
    _f("open_obstacles", "int", "T1"),
    _f("outcome", "enum", "history only", values=OUTCOMES),
    _f("closed_at", "date", "history only"),
    _f("needs_understood", "bool", "S1.1"),
    _f("network_status_known", "bool", "S1.2"),
    _f("decision_chain_mapped", "bool", "S1.3"),
    _f("integrators_engaged", "bool", "S1.4"),
    _f("competitors_analyzed", "bool", "S1.5"),
    _f("tailored_solution", "bool", "S1.6"),
    _f("tech_presentations", "int", "S1.7"),
    _f("solution_discussants", "int", "S1.8"),
    _f("site_visit_interest", "bool", "S1.9 / M1"),
    _f("contacts_profiled", "bool", "S2.1"),
    _f("integrator_attitudes_known", "bool", "S2.3"),
    _f("competitor_relationships_known", "bool", "S2.4 / L5"),
    _f("relationship_plan_aligned", "bool", "S2.6"),
    _f("relationship_plan_feasible", "bool", "S2.7"),
    _f("key_customer_guiding", "bool", "S2.8"),
    _f("decision_maker_signal", "enum", "S2.9", values=("none", "implicit", "explicit")),
    _f("competitor_counterproposal", "bool", "S4.1"),
    _f("customer_prefers_counterproposal", "bool", "S4.1"),
    _f("spec_drafting_started", "bool", "S4.2"),
    _f("spec_has_our_differentiators", "bool", "S4.3"),
    _f("helped_write_spec", "bool", "M4"),
    _f("tender_leans_to_us", "bool", "S4.4"),
    _f("scoring_criteria_known", "bool", "S4.5"),
    _f("scoring_criteria_favor_us", "bool", "S4.5"),
    _f("simulated_config_favorable", "bool", "S4.6"),
    _f("insider_on_competitors", "bool", "S5.1"),
    _f("evaluation_rules_favorable", "bool", "S5.2"),
    _f("evaluation_panel_known", "bool", "S5.3"),
    _f("obstacles_have_bypass", "bool", "S5.5"),
    _f("commercial_expectation_known", "bool", "S5.6"),
    _f("pricing_strategy_ready", "bool", "S5.7"),
    _f("bottom_line_set", "bool", "S5.8"),
    _f("closing_conditions_known", "bool", "S5.9"),
    _f("people_knowing_final_price", "int", "L8"),
    _f("site_visits", "int", "S1.9"),
    _f("site_visits_accompanied", "int", "L6", max_field="site_visits"),
    _f("one_on_one_meetings", "int", "L4"),
    _f("group_events", "int", "L4"),
    _f("customer_visits_90d", "int", "our visits in the last 90 days"),
    _f("open_product_issues", "bool", "L7"),
    _f("product_issue_plan", "bool", "L7"),
)

CONTACT_FIELDS: tuple[Field, ...] = (
    _f("name", "string"),
    _f("title", "string"),
    _f("role", "enum", "DC", values=("approver", "decision_maker", "evaluator", "advisor", "gatekeeper", "user")),
    _f("stance", "enum", "ST", values=("opponent", "non_supporter", "acknowledger", "sympathizer", "supporter", "ally")),
    _f("mind_share", "enum", "ST axis", values=_LOW_HIGH),
    _f("heart_share", "enum", "ST axis", values=_LOW_HIGH),
    _f("is_coach", "bool", "CO"),
    _f("speaks_for_us", "bool", "M2 / S5.4"),
    _f("influence", "enum", "CO.2", values=_LMH),
    _f("competitor_ties", "bool", "L2 / L5"),
    _f("accepts_us", "bool", "S2.2"),
)

COMPETITOR_FIELDS: tuple[Field, ...] = (
    _f("name", "string"),
    _f("incumbent", "bool"),
    _f("strength", "enum", values=_LMH),
    _f("relationship_points_known", "bool", "S2.4"),
    _f("has_counterproposal", "bool", "S4.1"),
)

PARTNER_FIELDS: tuple[Field, ...] = (
    _f("name", "string"),
    _f("influence_on_decision", "enum", "S3.1", values=_LMH),
    _f("competitor_ties_known", "bool", "S3.2"),
    _f("has_informant", "bool", "S3.3"),
    _f("plan_aligned", "bool", "S3.4"),
    _f("customer_attitude", "enum", "S3.5 / M3", values=("negative", "ambiguous", "positive")),
    _f("approached_us", "bool", "M3"),
)

#: entity name -> {field name -> Field}.  Entity "opportunity" plus one per child list.
CONTRACT: Mapping[str, Mapping[str, Field]] = {
    "opportunity": {f.name: f for f in OPPORTUNITY_FIELDS},
    "contacts": {f.name: f for f in CONTACT_FIELDS},
    "competitors": {f.name: f for f in COMPETITOR_FIELDS},
    "partners": {f.name: f for f in PARTNER_FIELDS},
}

#: Columns that only exist in the table form of child rows.
CHILD_KEY = "opportunity_id"


def merge_schema(base: Mapping[str, Mapping[str, Field]],
                 extra: Mapping[str, Mapping[str, Field]]) -> dict[str, dict[str, Field]]:
    """Return ``base`` with the fields of ``extra`` added (a new dict; inputs are untouched).

    A field of ``extra`` that ``base`` already declares must have the same type
    (and, for an enum, the same values); the ``base`` definition is kept.

    Raises
    ------
    ValueError
        An extra field redefines a base field with another type or other enum
        values, names an unknown entity or type, or its ``max_field`` names no
        field of its entity.

    Examples
    --------
    >>> s = merge_schema(CONTRACT, {"opportunity": {"pilot_running": Field("pilot_running", "bool")}})
    >>> s["opportunity"]["pilot_running"].type
    'bool'
    """
    merged: dict[str, dict[str, Field]] = {ent: dict(flds) for ent, flds in base.items()}
    for ent, flds in extra.items():
        if ent not in merged:
            raise ValueError(f"unknown entity {ent!r} (expected one of {', '.join(merged)})")
        for name, f in flds.items():
            if not isinstance(f, Field):
                raise ValueError(f"{ent}.{name}: expected a Field, got {type(f).__name__}")
            if f.type not in FIELD_TYPES:
                raise ValueError(f"{ent}.{name}: unknown type {f.type!r} (expected one of {', '.join(FIELD_TYPES)})")
            if f.type == "enum" and not f.values:
                raise ValueError(f"{ent}.{name}: an enum needs values")
            old = merged[ent].get(name)
            if old is not None:
                if old.type != f.type or (old.type == "enum" and set(old.values) != set(f.values)):
                    raise ValueError(
                        f"{ent}.{name} redefines a declared field: {_type_words(f)} vs {_type_words(old)}"
                    )
                continue  # the base definition (with its min, max_field, ...) stays authoritative
            merged[ent][name] = f if f.name == name else Field(**{**f.__dict__, "name": name})
    for ent, flds in merged.items():
        for name, f in flds.items():
            if f.max_field is not None and f.max_field not in flds:
                raise ValueError(f"{ent}.{name}: max_field {f.max_field!r} is not a field of {ent}")
    return merged


def _type_words(f: Field) -> str:
    return f"enum of {', '.join(f.values)}" if f.type == "enum" else f.type
