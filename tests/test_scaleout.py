"""The README's scale-out examples, run as written: Dask on a ``distributed`` cluster of worker
processes and Spark in local mode each give what :meth:`scoring.Scorer.score_frame` gives in one process.

The code blocks are read from README.md (the fenced block after ``<!-- example: NAME -->``) and
executed with ``scorer``, ``opportunities``, ``contacts``, ``competitors`` and ``partners`` defined,
so the README cannot drift from what is tested.
"""
from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from scoring import Scorer

pytestmark = pytest.mark.scaleout


def readme_example(name: str) -> str:
    """The Python block of README.md that follows ``<!-- example: name -->``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- example: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no example {name!r}"
    return m.group(1)


def _cell(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(_cell(x) for x in v)
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer, np.floating, int, float)) and not isinstance(v, (bool, np.bool_)):
        return round(float(v), 9)
    return v.item() if isinstance(v, np.generic) else v


def _rows(df: pd.DataFrame) -> list[tuple]:
    """The rows as plain values in (id, as_of) order, without ``scored_at`` (the time of each call)."""
    df = df.drop(columns="scored_at").sort_values(["id", "as_of"]).reset_index(drop=True)
    return [tuple(_cell(v) for v in row) for row in df.astype(object).itertuples(index=False)]


@pytest.fixture(scope="module")
def example_inputs(trained_model_dir, pipeline_tables):
    t = pipeline_tables
    return {"scorer": Scorer(model=trained_model_dir), "opportunities": t["opportunities"],
            "contacts": t["contacts"], "competitors": t["competitors"], "partners": t["partners"]}


def _run(name: str, inputs: dict) -> pd.DataFrame:
    ns = dict(inputs)
    exec(compile(readme_example(name), f"README.md example {name}", "exec"), ns)
    return ns["scores"]


def _single(inputs: dict) -> pd.DataFrame:
    return inputs["scorer"].score_frame(inputs["opportunities"], inputs["contacts"], inputs["competitors"],
                                        inputs["partners"])


def test_dask_on_a_cluster_of_worker_processes_equals_one_process(example_inputs):
    scores = _run("dask", example_inputs)
    single = _single(example_inputs)
    assert list(scores.columns) == list(single.columns)
    assert _rows(scores) == _rows(single)


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (17)")
# pyspark warns that it does not fully support pandas 3, and calls pandas APIs that pandas 3 deprecates
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning:pyspark.*")
def test_spark_in_local_mode_equals_one_process(example_inputs):
    scores = _run("spark", example_inputs)
    single = _single(example_inputs)
    assert list(scores.columns) == list(single.columns)
    assert _rows(scores) == _rows(single)
