"""The nightly run: score a whole open pipeline, chunk by chunk, on every core.

    input (JSON Lines or a folder of CSV/Parquet tables)
      -> InputStream (scoring.contract): partitions of validated column frames (+ rejects, orphans)
      -> ChunkScorer (chunks.py, in worker processes): rule evaluation, rule score,
         the model's probability and reasons, analysis-meeting flags
      -> PreviousRun (previous.py, optional, in the same worker): probability change, T2, T3
      -> HistoryColumns (scoring.store.nightly, optional, in the same worker): trend, what changed,
         the store's rows; without --previous the store's previous run gives the probability
         change, T2 and T3
      -> NightlyStore (in the run's process): the store's rows spilled per chunk, then appended to
         the store in one transaction once the outputs are complete, before they replace last night's
      -> OUTPUT (.parquet / .jsonl / .csv), REJECTS, summary, forecast (output.py, summary.py)

Nothing is lost: every input record is in OUTPUT or in REJECTS.  The files are
written atomically under the output lock (see :mod:`scoring.batch.output` and :mod:`scoring.batch.files`).

The per-record durable-rules path (:mod:`scoring.evidence.durable`) stays the reference;
``tests/test_batch.py`` checks the batch gives the same results.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import pyarrow as pa

from scoring.batch import DEFAULT_CHUNK_SIZE
from scoring.batch.chunks import ChunkScorer, as_of_date, text_column
from scoring.batch.files import RunFiles, failed_path, make_spill_dir, output_lock, remove_stale
from scoring.batch.output import AtomicWriter, rejects_table, write_atomic
from scoring.batch.previous import PreviousRun
from scoring.batch.summary import RunSummary
from scoring.contract.sources import resolve
from scoring.errors import InputError, ScoringError
from scoring.evidence.pack import RulePack
from scoring.score.flags import Thresholds

if TYPE_CHECKING:
    from scoring.model.logistic import Model
    from scoring.store import Store

#: rejects are written in blocks of this many rows
_REJECTS_BLOCK = 10_000

#: a check of a finished run: called with its summary before anything is replaced; raises
#: a ScoringError to fail the run (e.g. :func:`scoring.batch.summary.check_rejected_share`)
RunCheck = Callable[[Mapping[str, Any]], None]


def run_batch(source: str | os.PathLike, output: str | os.PathLike, *, pack: RulePack,
              model: Model | None = None, rejects: str | os.PathLike | None = None, previous: str | os.PathLike | None = None,
              as_of: str | None = None, keep: Sequence[str] = (), forecast: str | os.PathLike | None = None,
              thresholds: Thresholds | None = None, workers: int | None = None,
              chunk_size: int = DEFAULT_CHUNK_SIZE, progress: bool | None = None,
              summary_path: str | os.PathLike | None = None, strict: bool = False,
              checks: Sequence[RunCheck] = (), store: Store | None = None,
              since_days: int | None = None) -> dict[str, Any]:
    """Score every record of ``source`` into ``output``; return the run summary.

    Parameters
    ----------
    source : path
        JSON Lines file, or a folder of CSV or Parquet tables (the contract's forms).
    output : path
        ``.parquet``, ``.jsonl`` or ``.csv``; written atomically.
    pack : RulePack
        The rule pack (the model's own when there is a model).
    model : Model, optional
        None: rule score only, no probability.
    rejects : path, default ``<output file name>.rejects.csv``
        One row per rejected record (id, field, reason, where) and per orphan child row.
    previous : path, optional
        Last night's output: adds ``probability_change``, raises T3, and limits T2 to new slips.
        May be ``output`` itself (it is read whole before anything is replaced).
    as_of : str, optional
        The date for records without ``as_of`` (default: today, the run date).
    keep : sequence of str
        Input fields to carry into the output (owner, amount, region, ...).
    forecast : path, optional
        Write the pipeline forecast (expected value by owner, region, stage, close quarter; per currency).
    thresholds : Thresholds, optional
        Of the STALLED and T3 flags (default: :class:`scoring.score.flags.Thresholds`).
    workers : int, optional
        Processes (default: every core).  They die with the run, even a killed one.
    chunk_size : int
        Deals per chunk.
    progress : bool, optional
        Show a progress bar (default: when writing to a terminal).
    summary_path : path, default ``<output file name>.summary.json``
        Where the summary is written.
    strict : bool
        Refuse (a ScoringError, before any output is replaced) an input the summary warns about:
        a missing child table, an undeclared field (:meth:`~scoring.batch.summary.RunSummary.warnings`).
    checks : sequence of callables
        Run on the summary of the finished run before anything is replaced.  When one
        raises a ScoringError, the run fails: OUTPUT, REJECTS, the summary and the
        forecast keep what they had, this run's rejects and summary are written under
        their failed names (:func:`scoring.batch.files.failed_path`, e.g.
        ``scores.parquet.rejects.failed.csv``; the summary says ``"status": "failed"``),
        and the error is raised with the summary as its ``summary`` attribute.
        A successful run removes the failed files of an earlier one.
    store : Store, optional
        The score store (:mod:`scoring.store`): checked before scoring (a fault raises
        :class:`~scoring.errors.StoreError` and nothing is written); the output gains ``trend``,
        ``changes`` and ``changes_since``; without ``previous`` the store's previous run gives
        ``probability_change``, T2 and T3; the run is appended once the outputs are complete
        (a failed append replaces no output).
    since_days : int, optional
        ``changes_since`` compares with the stored run this many days back (default 7).

    Returns
    -------
    dict
        The run summary (also written to ``summary_path``); ``warnings`` lists what the
        caller should show (e.g. a dead run's lock taken over).

    Raises
    ------
    ScoringError
        Bad arguments (:class:`~scoring.errors.InputError`, among them two files of the
        run that would be one file), another run writing ``output``, an unreadable
        input, a failed check.
    OSError
        A file or folder that cannot be read or written (it names the path); the
        previous files are intact and no temporary file remains.
    """
    from scoring.contract.reader import DuplicateFilter, InputStream

    t0 = time.perf_counter()
    files = RunFiles.of(output, rejects, summary_path, forecast)
    files.check({"INPUT": source, "--previous": previous})
    output = files.output
    as_of = as_of_date(as_of)
    thresholds = thresholds or Thresholds()
    workers = workers or os.cpu_count() or 1
    undeclared_keep = [k for k in keep if k not in pack.schema["opportunity"]]
    if undeclared_keep:
        raise InputError(f"--keep names fields that are not declared: {', '.join(undeclared_keep)}")
    scorer = ChunkScorer(pack, model, thresholds=thresholds, keep=keep, as_of_default=as_of,
                         store_columns=store is not None)
    prev = PreviousRun(previous) if previous else None
    summary = RunSummary(resolve(source, pack.schema), pack.schema)
    history = None
    if store is not None:  # a store fault stops the run here, before anything is written
        from scoring.store.nightly import DEFAULT_SINCE_DAYS, NightlyStore

        history = NightlyStore(store, pack=pack, model=model, as_of=as_of, scored_at=scorer.scored_at,
                               since_days=since_days or DEFAULT_SINCE_DAYS)
        prev = prev or history.previous
    reject_rows: list[dict] = []
    duplicates = DuplicateFilter()  # across partitions (JSON Lines): only the keys come back from workers
    warnings: list[dict[str, Any]] = []  # besides the summary's own (see RunSummary.warnings)

    with output_lock(output) as lock:
        if lock.taken_over_from is not None:
            warnings.append({"kind": "lock_taken_over", "pid": lock.taken_over_from,
                             "message": f"the run with pid {lock.taken_over_from} that held {lock.path} is gone "
                                        "(killed?); its lock is taken over"})
        spill_base = _spill_base(output)
        remove_stale(files, spill_base)
        writers = [AtomicWriter(output), AtomicWriter(files.rejects)]
        out_w, rej_w = writers
        spill = None
        stream = None
        try:
            spill = make_spill_dir(spill_base)
            if history is not None:
                history.workdir = spill  # tonight's rows wait there for the append
            stream = InputStream(source, pack.schema, chunk_size=chunk_size, workdir=spill, as_of_default=as_of)
            specs = stream.partitions()
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: the worker pool forks this process
            bar = tqdm(total=len(specs), unit="chunk", desc="scoring", disable=None if progress is None else not progress,
                       leave=False)
            finish = _Finish(prev, thresholds, history.columns if history is not None else None)
            for table, meta in _map_ordered(specs, scorer, stream, workers, finish):
                dups: list[dict] = []
                rows = meta["store_rows"]
                if meta["keys"] is not None:
                    keep_rows, dups = duplicates.check(meta["keys"], meta["lines"])
                    if dups:
                        table = table.filter(pa.array(keep_rows))
                        rows = rows.filter(pa.array(keep_rows)) if rows is not None else None
                if history is not None:
                    history.take(table, rows)
                summary.n_read += meta["n_read"]
                summary.n_rejected += len(meta["rejects"]) + len(dups)
                summary.n_orphans += len(meta["orphans"])
                summary.add_undeclared(meta["undeclared_fields"], meta["n_read"])
                reject_rows.extend(_reject_rows(list(meta["rejects"]) + dups, meta["orphans"]))
                if len(reject_rows) >= _REJECTS_BLOCK:
                    rej_w.write(rejects_table(reject_rows))
                    reject_rows.clear()
                summary.add(table)
                out_w.write(table)
                bar.update(1)
            bar.close()
            if reject_rows:
                rej_w.write(rejects_table(reject_rows))
            if strict:
                summary.check_strict()  # refused: nothing written, nothing replaced
            out_w.close(empty_schema=scorer.output_schema() if history is None
                        else history.output_schema(scorer.output_schema()))
            rej_w.close(empty_schema=rejects_table([]).schema)

            result = summary.to_dict()
            result.update({
                "status": "ok", "input": str(source), "output": str(output), "rejects": str(files.rejects),
                "as_of_default": as_of, "model": scorer.model_version, "rule_pack": pack.version_tag,
                "previous": str(prev.path) if prev is not None else None, "scored_at": scorer.scored_at,
                "seconds": round(time.perf_counter() - t0, 2), "workers": workers,
            })
            result["deals_per_second"] = round(result["read"] / result["seconds"]) if result["seconds"] else None
            result.setdefault("warnings", []).extend(warnings)
            fc = summary.forecast_frame()
            result["forecast_total"] = fc[fc["dimension"] == "total"][["currency", "deals", "amount",
                                                                        "expected_value"]].to_dict("records") \
                if len(fc) else []
            if files.forecast is not None:
                writers.append(AtomicWriter(files.forecast))
                writers[-1].write(pa.Table.from_pandas(fc, preserve_index=False))
                writers[-1].close()
                result["forecast"] = str(files.forecast)
            _check(result, files, checks)
            if history is not None:  # the outputs are complete: append the run (a failure replaces nothing)
                result["store"] = {"url": store.backend.describe(), "run_id": history.commit(result, source)}
                result["seconds"] = round(time.perf_counter() - t0, 2)  # the append is part of the run
                result["deals_per_second"] = round(result["read"] / result["seconds"]) if result["seconds"] else None
            writers.append(AtomicWriter(files.summary, fmt="text"))
            writers[-1].write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
            for w in writers:  # every file is complete on disk: only renames are left
                w.commit()
            for path in (failed_path(files.rejects), failed_path(files.summary)):
                path.unlink(missing_ok=True)  # an earlier failed run's: this run supersedes it
        except _RunFailed as failed:
            for w in writers:
                if w is not rej_w:
                    w.abort()  # the output and the forecast: the previous ones stay
            try:
                rej_w.commit(to=failed_path(files.rejects))
                write_atomic(failed_path(files.summary),
                             json.dumps(failed.summary, indent=2, ensure_ascii=False) + "\n")
            except BaseException:
                rej_w.abort()
                raise
            failed.error.summary = failed.summary
            raise failed.error from None
        except BaseException:
            for w in writers:
                w.abort()
            raise
        finally:
            if history is not None:
                history.abort()  # its spill file (a committed run's is closed already)
            if stream is not None:
                stream.close()
            if spill is not None:
                shutil.rmtree(spill, ignore_errors=True)
    return result


class _RunFailed(Exception):
    """A check of the finished run failed (carries the error and the failed run's summary)."""

    def __init__(self, error: ScoringError, summary: dict[str, Any]):
        super().__init__(str(error))
        self.error = error
        self.summary = summary


def _check(result: dict[str, Any], files: RunFiles, checks: Sequence[RunCheck]) -> None:
    """Run the checks of a finished run; :class:`_RunFailed` when one fails.

    The checks see the summary as the failed run writes it (its rejects under the failed
    name), so their messages name the file the user should open."""
    failed = {**result, "status": "failed", "rejects": str(failed_path(files.rejects)),
              "summary": str(failed_path(files.summary)), "forecast": None}
    try:
        if result["read"] != result["scored"] + result["rejected"]:  # the invariant users rely on
            raise ScoringError(f"internal error: read {result['read']} != scored {result['scored']} + "
                               f"rejected {result['rejected']}")
        for check in checks:
            check(failed)
    except ScoringError as exc:
        failed["error"] = str(exc)
        raise _RunFailed(exc, failed) from None


def _spill_base(output: Path) -> Path | None:
    """Temporary partitions go beside the output (same disk as the result), unless $TMPDIR is set."""
    return None if os.environ.get("TMPDIR") else output.parent


# --------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


class _Finish:
    """What is done to a scored chunk where it was scored (in the worker): the previous run's
    probability change and flags (:class:`PreviousRun`), then the store's history columns and
    rows (:class:`scoring.store.nightly.HistoryColumns`).  The workers inherit it when the run
    forks them (the previous runs' arrays are shared, not copied).  Returns the chunk's output
    and its store rows (None without a store)."""

    def __init__(self, prev: PreviousRun | None, thresholds: Thresholds, columns=None):
        self.prev = prev
        self.thresholds = thresholds
        self.columns = columns

    def __call__(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        pos = None
        if self.prev is not None:
            # the store's previous run shares its index with the history columns: one look-up for both
            shared = self.columns is not None and self.columns.prev is not None and \
                self.prev.index is self.columns.prev.index
            pos = self.prev.positions(table.column("id").to_numpy(zero_copy_only=False)) if shared else None
            table = self.prev.apply(table, self.thresholds, pos)
        if self.columns is not None:
            return self.columns.apply(table, pos)
        return table, None


def _init_worker(scorer: ChunkScorer, stream, parent: int, finish: _Finish) -> None:
    _die_with_parent(parent)
    _WORKER["scorer"] = scorer
    _WORKER["stream"] = stream
    _WORKER["finish"] = finish


def _die_with_parent(parent: int) -> None:
    """End this worker process when the run (``parent``) ends, even by SIGKILL.

    Linux: the kernel's parent-death signal (``PR_SET_PDEATHSIG``).  Elsewhere: a
    thread that watches the parent pid.  Either way a worker never outlives its run.
    """
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the signal was armed
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _work(spec) -> tuple[pa.Table, dict]:
    chunk = _WORKER["stream"].load(spec)
    return _scored(_WORKER["scorer"], _WORKER["finish"], chunk)


def _scored(scorer: ChunkScorer, finish: _Finish, chunk) -> tuple[pa.Table, dict]:
    table, rows = finish(scorer.score(chunk.frames))
    meta = _chunk_meta(chunk)
    meta["store_rows"] = rows
    return table, meta


def _chunk_meta(chunk) -> dict:
    """What the parent needs of a chunk besides its scores.  ``keys``: (id, as_of) of the scored rows
    when duplicates can only be found across partitions (JSON Lines), else None."""
    meta = {k: getattr(chunk, k) for k in ("rejects", "orphans", "n_read", "undeclared_fields")}
    meta["keys"] = meta["lines"] = None
    if getattr(chunk, "needs_dedupe", False):
        opps = chunk.frames.opps
        ids = opps["id"].astype(object).tolist()
        asofs = text_column(opps, "as_of").tolist()
        meta["keys"] = list(zip(ids, asofs))
        meta["lines"] = [int(x) for x in chunk.positions]
    return meta


def _map_ordered(specs, scorer: ChunkScorer, stream, workers: int,
                 finish: _Finish) -> Iterator[tuple[pa.Table, dict]]:
    """Score and finish partitions in order, at most ``workers + 1`` in flight (bounded memory)."""
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            yield _scored(scorer, finish, stream.load(spec))
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(scorer, stream, os.getpid(), finish))
    try:
        pending = []
        it = iter(specs)
        for spec in it:
            pending.append(ex.submit(_work, spec))
            if len(pending) > workers:
                break
        while pending:
            fut = pending.pop(0)
            res = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(ex.submit(_work, nxt))
            yield res
    finally:  # on an error, the chunks not started yet are dropped rather than scored
        ex.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- duplicates and rejects


def _reject_rows(rejects: Sequence[Mapping], orphans: Sequence[Mapping]) -> list[dict]:
    """Rows of the rejects file: rejected records, then orphan child rows."""
    rows = [{"kind": "record", "id": r.get("id"), "field": r.get("field"), "reason": r.get("reason"),
             "where": _where(r)} for r in rejects]
    rows += [{"kind": "orphan", "id": o.get("opportunity_id"), "field": o.get("table"),
              "reason": o.get("reason"), "where": _where(o, o.get("table"))}
             for o in orphans]
    return rows


def _where(r: Mapping, table: str | None = None) -> str | None:
    if r.get("line") is not None:
        return f"line {r['line']}"
    if r.get("row") is not None:
        return f"{table + ' ' if table else ''}row {r['row']}"
    return None
