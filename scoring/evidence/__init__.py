"""Evidence: a rule pack and what it finds in deals.

``pack``      loading and validating a rule pack (YAML) into :class:`RulePack`
``packfiles`` a pack's files: reading the folder, its fingerprint, its YAML (bounded aliases and depth,
              no duplicate keys)
``grammar``   the safe subset of the durable-rules condition grammar
``compiled``  the ONE compiled form of a pack: condition trees, counts,
              computed fields, layers and status resolution
``status``    the status codes (missing / met / unknown)
``durable``   backend 1: durable-rules, one record at a time (the reference, where it imports:
              not on Python 3.13 and newer, where its Engine runs backend 3)
``columnar``  backend 2: column-wise numpy over chunks of deals (the batch; it
              also computes one record's derived facts for backend 1)
``interp``    backend 3: the compiled form interpreted in Python for one record (the library call)
``arrays``    a field of a chunk as numpy arrays, and each check of the grammar on it
``review``    reviewing a pack: its own examples, and which rules an edit changes
              (its effect on records' scores is :mod:`scoring.score.review`)

The languages of a pack's texts are defined here, where the command line reads
them without loading a pack.
"""

#: The languages a pack writes its titles and actions in (English first: the fallback).
LANGS: tuple[str, ...] = ("en", "zh")
