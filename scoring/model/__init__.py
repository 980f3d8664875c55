"""The win-probability model: features, training, the model, its artifact and report.

``features``        :class:`EvidenceTransformer`: records -> the evidence matrix
``logistic``        :class:`Model`: probabilities, reasons and the coefficient table
``train``           fitting on closed deals: drops, split by deal and by time, C by grouped CV, baselines
``metrics``         probability metrics and calibration tables (used by train and report)
``artifact``        saving, verifying and loading a model folder (manifest, checksums)
``registry``        the current model, promote, rollback, and which pack and model a command uses
``report``          the HTML model report: its plain data, and writing the page
``report_page``     the report's page: a view of the data, laid out by a Jinja2 template
``report_figures``  the report's plots (matplotlib, imported only when drawing)
``report_text``     the report's words (en, zh) and number formats
``templates/``      the report's page template (Jinja2) and style sheet
"""
