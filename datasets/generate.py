"""Seeded generator of synthetic B2B deals in the contract's form.

Two kinds of data come out, both in the table form (pandas DataFrames: one
``opportunities`` table plus ``contacts``, ``competitors`` and ``partners``
child tables keyed by ``opportunity_id``) and, for small sizes, in the nested
form (``tables_to_records``):

* ``history``: closed deals, each seen as 1-4 snapshots taken at increasing
  ``as_of`` dates strictly before its ``closed_at``, with ``outcome`` (``won``,
  ``lost`` or ``no_decision``).  Ids ``H-000001``...; ``(id, as_of)`` unique;
  child tables carry ``as_of`` too.
* ``pipeline``: open deals at one ``as_of`` date.  Ids ``P-000001``...

Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed
order, column by column (no Python loop over deals), so the same seed and
arguments give byte-identical output, and a million open deals with their
~5.8 million child rows take 5-15 seconds and < 2 GB.

Generative process
------------------
**Deal.**  Region (north/south/east/west/central), industry, product line and
owner (``rep01``..``rep30``) are drawn uniformly-ish; amount is lognormal
(median ~600k, 20k-30M, rounded to 1000) in CNY (85%), USD or EUR (5-7x
smaller nominal).  Two latent variables, standard normal, never written out:

* ``control`` -- how well the rep controls the deal (the methodology's
  thesis).  It is 0.45 x the owner's skill plus deal-level noise.
* ``tech`` -- how well our solution fits (correlation 0.4 with control).

**Evidence.**  Every checklist item has a *truth* drawn per deal,
``P(true) = sigmoid(alpha + beta * driver)`` with the driver control, tech or
their mean (relationship items follow control, S1.6/S4 specification items
follow tech; "bad" items such as ``customer_prefers_counterproposal`` or
``open_product_issues`` have beta < 0).  Counts (presentations, site visits,
one-to-one meetings, group events, close-date pushes ...) are Poisson with
control-dependent rates and grow monotonically with the deal's progress;
``site_visits_accompanied <= site_visits``; ``one_on_one_meetings`` is zero
for a control-dependent share of deals (L4).

**What is recorded (unknown is not false).**  A field that belongs to stage k
(S1 fields k=0, S2 k=1, S4 k=3, S5 k=4; activity counts k=0) is known in a
snapshot at stage s with probability ~0.68 (s = k), 0.80 (s = k+1), ... 0.92
on the log-odds scale of an average rep, shifted by 0.6 x control (better
reps record more; in the data ~60% of current-stage fields and 75-90% of
earlier-stage fields are known), and only ~3% when s < k.  Bad news is
written less often (-0.6 on that log-odds): a "no" to a checklist item (a
"yes" to ``open_product_issues`` or a rival's counter-proposal), an opponent's
or non-supporter's stance, a partner the customer dislikes, the price known
to more than one person.  So what is missing is not missing at random.
Each field keeps one uniform draw per deal, so a later snapshot knows
everything an earlier one knew and more.  Child rows (3-6 contacts, 0-3
competitors, 0-2 partners per deal) become visible stage by stage and their
fields follow the same rule (contact stances are sometimes guessed early).

**Contacts.**  The second contact is usually the decision maker, the third
often the approver.  Stance is an ordinal draw driven by control (approvers
lean cautious, L3).  With ``P = sigmoid(1.1 * control)`` the deal has a
coach (stance raised to at least supporter).  Supporters and allies speak up
for us with a control-dependent probability.  About 6% of contacts have ties
to a rival (L2/L5), found out only part of the time.

**Outcome.**  The win log-odds is a sum of (truth-level) terms, evaluated at
the deal's last stage before it closed.  Graded measures enter with the shapes
the course describes (saturation, thresholds, stage dependence):

=====================================================  ==========================
term                                                   log-odds
=====================================================  ==========================
net support of key people (approver, DM, or high       1.2 x tanh(net / 3)
influence): sum of influence weights (low 0.5, medium  (saturates)
1, high 2) of supporters/allies minus those of
opponents/non-supporters (visible contacts)
decision maker's stance, the ladder opponent,          -1.0, -0.6, 0, +0.2, +0.5,
non-supporter, acknowledger, sympathizer, supporter,   +0.8; no DM -0.3
ally (S2.9, ST)
decision_maker_signal implicit / explicit, times the   0.5 / 1.0 x (+0.7 DM for
direction of the DM's stance; none                     us, -0.9 against, +0.15
                                                       else); none -0.2
known coach (exists and recorded; L1)                  +0.9 in S1-S3, +0.5 later
a key person speaks for us (M2, S5.4)                  +0.7 from S3, +0.3 before
a key person / another contact with ties to a rival    -0.9 / -0.4
(L2/L5)
spec has our differentiators, tender leans to us,      +0.4, +0.5,
helped write spec, scoring criteria favour us (M4;     +0.4, +0.35
from S4 on)
customer prefers a rival's counter-proposal (S4 on)    -0.6
bidding preparations done (S5.1-S5.3, S5.5-S5.9; in    +0.2 each, at most 5
bidding only)
partner attitude: any positive / any negative /        +0.45 / -0.6 /
only ambiguous (M3)                                    -0.15
an incumbent rival that is strong / not strong;        -0.8 / -0.3;
each other strong rival (at most 2)                    -0.15 each
competitor_relationships_known false / unknown (L5)    -0.3 / -0.15
one-on-one meetings per key person x (L4)              0.7 x (1 - exp(-x / 1.5))
                                                       - 0.35 (saturates)
group events but no one-to-one meetings (L4)           -0.5
site visits we did not accompany: the first / each     -0.5 / -0.25
further, up to two more (L6)
open product issues without a plan (L7)                -0.6
in bidding, the final price known to 2 / 3+ people     -0.7 / -1.2
(L8)
close-date pushes 0 / 1 / 2 / 3 / 4+ (T2)              0 / -0.15 / -0.6 / -0.9
                                                       / -1.2
days in the last stage > 90 / > 180 (stalled)          -0.4 / -0.8
share of unknown checklist fields of reached stages    -1.2 x share
last stage reached S1..S5                              -1.6 .. +0.3
log10(amount / 600k)                                   -0.15 x
hidden: 0.25 x control + N(0, 2.8^2)                   (unobserved)
=====================================================  ==========================

plus an intercept (-2.4) giving a win rate of ~29% of closed deals.  The
hidden term caps what any model can learn: the visible log-odds (all of the
terms above, from the truth at the deal's last stage) ranks won against not
won with an AUC of about 0.88; a logistic regression on the *recorded*
fields of the snapshots (scalars, days in stage, counts of contacts by stance,
of approvers and decision makers, of coaches, speakers and rival ties),
trained on the older 80% by ``closed_at``, reaches about 0.82 on the newest
20% (0.83 on each deal's last snapshot); measured on 20,000 deals, seed 1.
Among deals not won, ``no_decision`` is more likely for deals that stalled
early and for weak control (~11% of all closed deals); the rest are ``lost``.

**Time.**  ``closed_at`` is uniform over the ~26 months ending 25 days before
``as_of`` (2024-09-01 .. 2026-10-31 for the default ``as_of`` 2026-11-25), so
a time-based split is meaningful.  Deals last 45-720 days (lognormal, median
~200, longer for weak control); the reached stages split that time, the last
one stretched for weak control (so time in stage carries signal); snapshots fall at uniform points
of the deal's life, so their stage and evidence progress.  ``expected_close``
is usually after ``as_of`` (about 8% are overdue).  Open pipeline stages are
skewed early (~34/25/17/14/10% for S1..S5).

``dirty=True`` spoils ~1.5% of history snapshots for tests of the trainer's
filtering: half are moved on or after ``closed_at``, the others lose their
``outcome`` or ``closed_at``.  The default output is clean and every record
satisfies the contract.

Command line (``scoring generate``)::

    scoring generate history  --deals 1200 --seed 7 --out datasets/sample/history.jsonl
    scoring generate pipeline --deals 1000000 --seed 1 --out /tmp/pipe --format parquet
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from dealscore_datasets.forms import TABLES, tables_to_records, write_jsonl, write_tables
from dealscore_datasets.simulation import day_of, simulate_history, simulate_pipeline

__all__ = [
    "DEFAULT_AS_OF",
    "generate_tables",
    "generate_records",
    "tables_to_records",
    "write_tables",
    "write_jsonl",
    "generate",
    "TABLES",
]

DEFAULT_AS_OF = "2026-11-25"


def generate_tables(n_deals: int, *, seed: int = 0, kind: str = "pipeline",
                    as_of: str = DEFAULT_AS_OF, snapshots: tuple[int, int] = (1, 4),
                    dirty: bool = False, id_offset: int = 0) -> dict[str, pd.DataFrame]:
    """Generate ``n_deals`` synthetic deals in table form.

    Returns ``{"opportunities", "contacts", "competitors", "partners"}`` ->
    DataFrame.  Booleans are ``boolean``, counts ``Int64``, ``amount``
    ``Float64``, text and enums ``string``, dates ``datetime64[s]``; unknown is
    a real null.  Child tables carry ``opportunity_id`` (and ``as_of`` for
    history).  ``kind="history"``: ``n_deals`` closed deals, each as
    ``snapshots=(lo, hi)`` snapshots (fewer when two fall on the same day),
    closing over the ~26 months before ``as_of``.  ``kind="pipeline"``: open
    deals as of ``as_of``.  ``dirty`` (history only) spoils ~1.5% of the
    snapshots (see the module docstring).  Ids are numbered from
    ``id_offset + 1`` (for generating a large set in chunks of different seeds).
    """
    if kind not in ("pipeline", "history"):
        raise ValueError(f"kind must be 'pipeline' or 'history', not {kind!r}")
    n = int(n_deals)
    if n < 0:
        raise ValueError("n_deals must be >= 0")
    lo, hi = (int(snapshots[0]), int(snapshots[1]))
    if not 1 <= lo <= hi:
        raise ValueError("snapshots must be (lo, hi) with 1 <= lo <= hi")
    rng = np.random.default_rng(seed)
    day = day_of(as_of)
    if kind == "pipeline":
        return simulate_pipeline(rng, n, day, int(id_offset))
    return simulate_history(rng, n, day, (lo, hi), bool(dirty), int(id_offset))[0]


def generate_records(n_deals: int, **kw) -> list[dict]:
    """``tables_to_records(generate_tables(n_deals, **kw))``."""
    return tables_to_records(generate_tables(n_deals, **kw))


# --------------------------------------------------------------------- writers
# --------------------------------------------------------------------- one call
#: how many steps :func:`generate` reports to its ``progress`` callback
GENERATE_STEPS = 2


def generate(kind: str, n_deals: int, out, *, seed: int = 0, fmt: str | None = None,
             as_of: str = DEFAULT_AS_OF, snapshots: tuple[int, int] = (1, 4), dirty: bool = False,
             progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Generate ``n_deals`` deals of ``kind`` (``history`` or ``pipeline``) and write them to ``out``.

    ``fmt`` is ``jsonl`` (``out`` is a file), ``parquet`` or ``csv`` (``out``
    is a folder of tables); by default ``jsonl`` when ``out`` ends in
    ``.jsonl``, else ``parquet``.  Returns the rows written per table.
    ``scoring generate`` is the command-line form.  ``progress`` is called with the name of each of
    its :data:`GENERATE_STEPS` steps as it starts (for a progress bar).
    """
    step = progress or (lambda _name: None)
    fmt = fmt or ("jsonl" if str(out).endswith((".jsonl", ".jsonl.gz")) else "parquet")
    step("simulating the deals")
    tables = generate_tables(n_deals, seed=seed, kind=kind, as_of=as_of, snapshots=snapshots, dirty=dirty)
    step("writing them")
    if fmt == "jsonl":
        write_jsonl(tables_to_records(tables), out)
    else:
        write_tables(tables, out, fmt)
    return {k: len(v) for k, v in tables.items()}
