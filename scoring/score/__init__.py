"""The transparent rule score, the analysis-meeting flags and explanations.

``rulescore``  the one score formula and next-action order (column-wise; one deal is one row)
``ragged``     per-deal lists of rule ids stored flat (the scorer's lists, written by the batch)
``flags``      STALLED, and T2/T3 against the previous run
``explain``    one deal's explanation as data and as text
``labels``     words in English and Chinese
``review``     how a rule-pack edit changes records' scores, flags and statuses

The defaults of the flags are defined here, where the command line reads them
without importing numpy.
"""

#: Days in a stage after which a deal counts as stalled (the STALLED flag of :mod:`scoring.score.flags`).
DEFAULT_STALL_DAYS: dict[str, int] = {"technical_promotion": 90, "relationship": 90, "partner": 60,
                                      "solution": 60, "bidding": 45}
#: T3 fires when the probability dropped by more than this since the last run (absolute, 0-1).
DEFAULT_T3_DROP = 0.10
