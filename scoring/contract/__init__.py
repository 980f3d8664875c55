"""The data contract: what a record is, and reading and validating it.

Everything that reads opportunity records goes through this package, and it
imports nothing of the rest of ``scoring`` but :mod:`scoring.errors` (and
``mapping`` the bounded YAML reader :mod:`scoring.evidence.packfiles`).

``schema``   the contract as data: fields, types, stages; merging a pack's fields
``values``   the typing rules and limits of one value (JSON, CSV text, Parquet) and every reason word
``entities`` a schema compiled into per-field converters, once per schema
``columns``  the same rules over whole Arrow columns (the per-value rules as fallback)
``frames``   deals in column form (:class:`~scoring.contract.frames.Frames`), records -> frames
``nested``   one nested record (a dict) -> its normalised form
``jsonl``    the JSON Lines loop
``csvtext``  CSV tables as text: the header's names, short rows, rows of another length
``tables``   the column-wise validator of the table form
``sources``  which files an input is, how its tables are read, and its partitions
``reader``   reading a whole input: chunks of frames (``InputStream``) or records (``read_records``)
``mapping``  a CRM export -> the contract's table form, by a mapping file (in front of the reader)
"""
