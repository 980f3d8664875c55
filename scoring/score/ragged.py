"""Per-deal lists of rule ids stored flat (what the column-wise scorer returns and the batch writes)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Ragged:
    """Per-deal lists of rule ids, stored flat: deal ``i`` holds ``values[offsets[i]:offsets[i+1]]``.

    The batch writes it straight into an Arrow list column (no Python list per deal).
    """

    offsets: np.ndarray  # int64, length n + 1
    values: np.ndarray   # object array of rule ids

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[str]:
        return self.values[self.offsets[i]:self.offsets[i + 1]].tolist()

    def tolist(self) -> list[list[str]]:
        return [self[i] for i in range(len(self))]

    def to_arrow(self):
        import pyarrow as pa

        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)),
                                        pa.array(self.values.tolist(), type=pa.string()))

    @staticmethod
    def from_arrow(arr) -> "Ragged":
        """From an Arrow list<string> column (a ChunkedArray or an Array)."""
        import pyarrow as pa

        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        values = np.asarray(arr.values.to_pylist(), dtype=object)
        start = offsets[0]
        return Ragged(offsets - start, values[start:offsets[-1]] if len(values) else values)

    @staticmethod
    def from_lists(lists) -> "Ragged":
        """From one list (or None) per deal."""
        lists = [() if v is None else v for v in lists]
        lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.empty(int(offsets[-1]), dtype=object)
        values[:] = [str(x) for v in lists for x in v]
        return Ragged(offsets, values)

    def take(self, positions: np.ndarray) -> "Ragged":
        """The lists at ``positions`` (``-1``: an empty list), in that order."""
        pos = np.asarray(positions, dtype=np.int64)
        ok = pos >= 0
        safe = np.where(ok, pos, 0)
        start = self.offsets[safe]
        lengths = np.where(ok, self.offsets[safe + 1] - start, 0)
        offsets = np.zeros(len(pos) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        idx = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Ragged(offsets, self.values[idx])

    def rows(self) -> np.ndarray:
        """The deal (row) of each value."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    @staticmethod
    def from_pairs(rows: np.ndarray, cols: np.ndarray, ids: np.ndarray, n: int) -> "Ragged":
        """From (row, column) pairs sorted by row."""
        counts = np.bincount(rows, minlength=n) if len(rows) else np.zeros(n, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return Ragged(offsets, ids[cols])
