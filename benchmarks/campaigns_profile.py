"""cProfile of one campaign sender (``marketing.sending.run_send``) over a bench run, in
process: ``python -m benchmarks.campaigns_profile [PROFILES] [DATABASE]`` with
``DATABASE_URL`` set (the bench database, ``crm_bench_profile`` unless named). Prints the
cumulative and own-time tables (docs/profiles/campaigns-sender.md keeps the before and after)."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from .harness import bench_setup


class _InProcess:
    """``multiprocessing.get_context("fork")`` for the suite: the first sender's share runs
    here, under the profiler."""

    def Pool(self, n):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def map(self, fn, args):
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        sent = fn(args[0])
        profile.disable()
        print(f"one sender: {sent} messages in {time.perf_counter() - started:.2f}s")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        return [sent]


def main() -> None:
    profiles = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    bench_setup(sys.argv[2] if len(sys.argv) > 2 else "crm_bench_profile")
    import django

    django.setup()
    from . import campaigns

    campaigns.multiprocessing.get_context = lambda kind: _InProcess()  # type: ignore[assignment]
    campaigns.REPEATS = 1
    campaigns.NAIVE_SAMPLE = 100  # its profile is printed too (one process of two)
    campaigns.run(profiles=profiles, quick=False, env={}, log=print)


if __name__ == "__main__":
    main()
