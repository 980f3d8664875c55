"""The data contract: what a record is, and reading and validating it.

Everything that reads opportunity records goes through this package, and it
imports nothing of the rest of ``scoring`` but :mod:`scoring.errors`.

``schema``   the contract as data: fields, types, stages
``values``   the typing rules of one value (JSON, CSV text, Parquet)
``columns``  the same rules over whole Arrow columns
``frames``   deals in column form (:class:`~scoring.contract.frames.Frames`)
``nested``   one nested record (a dict) -> its normalised form
``jsonl``    the JSON Lines loop
``tables``   the column-wise validator of the table form
``sources``  which files an input is, and its partitions
``reader``   reading a whole input: records, rejects, orphans
"""
