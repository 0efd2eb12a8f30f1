"""Tools for developers' processes (tests, benchmarks), shipped with the code but never
imported by the web app or the worker."""
