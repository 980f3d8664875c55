"""The score store: the nightly job's memory (docs/store.md).

``schema``    the tables, views and schema versions (one SQL for both engines)
``backends``  DuckDB (embedded, the default: a file beside the output) and PostgreSQL (``--store URL``)
``store``     :class:`Store`: append a run in one transaction, read runs and deals, prune, upgrade
``changes``   per-rule contributions, the trend label, what changed and why (pure, column-wise)
``nightly``   the store's part of a ``scoring score`` run: the history columns, flags from the
              store, the monitoring summary, and the append once the outputs are complete
``timeline``  one deal's stored history as data and text (``scoring history``, ``explain --since``)
``monitor``   PSI, expected (before outcomes) and realized (after) performance, outcomes files
``monitor_page``  the ``scoring monitor --out`` page

The store sits beside the batch: :mod:`scoring.batch` calls :mod:`scoring.store.nightly`; nothing
here imports the command line.
"""
from scoring.store.store import DEFAULT_STORE_NAME, RunRecord, Store

__all__ = ["DEFAULT_STORE_NAME", "RunRecord", "Store"]
