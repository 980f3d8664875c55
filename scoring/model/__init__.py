"""The win-probability model: features, training, the model, its artifact and report.

``scorecard``       :class:`Model`: the points table; probabilities, reasons, gains (numpy only)
``binning``         monotone bins of a graded measure, learned from the history
``fit``             the scorecard's design, its sign-bounded penalised fit, penalties by grouped CV
``train``           fitting on closed deals: drops, split by deal and by time, baselines, sign report
``flatten``         raw contract fields flattened (the challenger's input), and the fields rules read
``challenger``      gradient boosting against the scorecard; raw fields with signal no rule reads
``features``        the older :class:`EvidenceTransformer`, kept so older pickled artifacts load
``logistic``        older import path of :class:`Model`
``metrics``         probability metrics and calibration tables (used by train and report)
``artifact``        saving, verifying and loading a model folder (manifest, checksums)
``registry``        the current model, promote, rollback, and which pack and model a command uses
``report``          the HTML model report: its plain data, and writing the page
``report_page``     the report's page: a view of the data, laid out by a Jinja2 template
``report_figures``  the report's plots (matplotlib, imported only when drawing)
``report_text``     the report's words (en, zh) and number formats
``templates/``      the report's page template (Jinja2) and style sheet
"""
