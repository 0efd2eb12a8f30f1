"""The benchmark suite (`make bench`): generated data, measured figures, docs/benchmarks.md.

Figures come from here, never from timed unit tests. Each suite stores its raw results in
``docs/benchmarks.json`` under its own key; the markdown is rendered from all of them, so
running one suite keeps the others' figures.
"""
