"""Genesis benchmarks: every figure is measured side by side with its anchor in one run.

Run ``python -m bench`` (``make bench``); ``python -m bench --help`` lists the options.
Each module measures one figure family and exposes ``run(scale) -> list[Figure]``.
"""
