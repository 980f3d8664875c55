"""The status of a rule for one deal: the one definition of its codes and words.

Every rule ends in exactly one status:

* ``met``      its ``when`` condition matches (for a red flag: the flag is raised);
* ``unknown``  it is not met, and its ``unknown_when`` matches (not knowing is a risk);
* ``missing``  neither.

Column-wise results store the codes (``int8``); explanations use the words.
"""
from __future__ import annotations

MISSING, MET, UNKNOWN = 0, 1, 2
#: code -> word
STATUS_WORDS: tuple[str, ...] = ("missing", "met", "unknown")
#: word -> code
STATUS_CODES: dict[str, int] = {w: i for i, w in enumerate(STATUS_WORDS)}
