"""Test histories for the model benchmarks, with the true win probability of every deal.

Each history simulates deals from a latent deal quality, writes them as
records of the data contract (a closed history with outcomes and close dates
spread over two years, and an open pipeline at one ``as_of`` date whose
outcomes are drawn but kept aside), and keeps the TRUE probability of each
deal, so a model can be scored against the outcomes and compared with the
best any model could do.

They are written from the contract (``docs/contract.md``) and the course's
methodology only, independently of the rule pack, the model code and the
bundled generator (``datasets/``): other latent structure, other missingness,
other seeds, so a model tuned to the bundled generator has no head start.

* :mod:`.linear`: every effect a straight line on the log-odds.
* :mod:`.shaped`: thresholds, saturation and stage-dependent effects.

Both share the deal world of :mod:`.world` (what exists, what is recorded)
and differ in how the truth turns into the win probability (and in their
recording habits and stage mix).  ``simulate(n_closed, n_open, seed)`` returns
a :class:`.world.History`.
"""
from benchmarks.histories import linear, shaped

HISTORIES = {"linear": linear, "shaped": shaped}
