"""Kept for older imports: the model is :class:`scoring.model.scorecard.Model` (a points table).

Everything here is defined in :mod:`scoring.model.scorecard`.
"""
from scoring.model.scorecard import PDO, TOP_REASONS, Model, coef_to_points, sigmoid  # noqa: F401
