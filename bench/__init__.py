"""The benchmark: ai-data-agent against the raw Docker floor, in one run.

    .venv/bin/python -m bench.run        # or: make bench; writes bench/results.json

See bench/README.md for what is measured and the BENCH_* knobs.
"""
