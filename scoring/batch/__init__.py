"""The nightly batch: score a whole pipeline, chunk by chunk, on every core.

``chunks``    scoring one chunk of validated frames into output rows
``previous``  last night's output: probability change, T2 and T3
``files``     the run's file names and collisions, the output lock, what a killed run left
``output``    writers, atomic replacement, reading an output back, safe CSV cells
``summary``   the run summary and the forecast
``run``       the run itself

The defaults of a run are defined here, where the command line reads them
without importing the run's machinery.
"""

#: The run fails (exit code 3) when more than this share of the input is rejected.
DEFAULT_MAX_REJECTED_SHARE = 0.05
#: Deals per chunk (a unit of work of one worker process; bounds memory).
DEFAULT_CHUNK_SIZE = 50_000
#: Input fields ``scoring score`` carries into the output by default.
DEFAULT_KEEP = ("owner", "amount", "currency", "region", "expected_close")
