"""The transparent rule score, the analysis-meeting flags and explanations.

``rulescore``  the one score formula and next-action order (column-wise; one deal is one row)
``ragged``     per-deal lists of rule ids stored flat (the scorer's lists, written by the batch)
``flags``      STALLED, and T2/T3 against the previous run
``explain``    one deal's explanation as data and as text
``labels``     words in English and Chinese
``review``     how a rule-pack edit changes records' scores, flags and statuses
"""
