"""The win-probability model: features, training, the model, its artifact and report.

``features``   :class:`EvidenceTransformer`: statuses -> the evidence matrix
``logistic``   :class:`Model`: probabilities, reasons and the coefficient table
``train``      fitting on closed deals, split by deal and by time, with baselines
``metrics``    probability metrics and calibration tables
``artifact``   saving and loading a model folder (manifest, checksums)
``registry``   the current model, promote, rollback, and which pack a command uses
``report``     the HTML model report
"""
