"""Synthetic deals in the contract's form: the seeded generator (:mod:`.generate`) and, beside it,
the bundled sample it produced (``sample/``).  Installed as the package ``dealscore_datasets``;
``scoring generate`` is its command line."""
