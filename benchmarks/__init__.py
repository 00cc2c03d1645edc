"""openseg's benchmarks: seeded XDM data, a fixed segment suite, and the baselines openseg is measured against.

Run ``python -m benchmarks.run`` (``make bench``); ``BENCH_SIZE=1m`` or ``10m`` for the larger sizes.
"""
