"""The nightly batch: score a whole pipeline, chunk by chunk, on every core.

``chunks``    scoring one chunk of validated frames into output rows
``previous``  last night's output: probability change, T2 and T3
``output``    writers, atomic replacement and the output lock
``summary``   the run summary and the forecast
``run``       the run itself
"""
