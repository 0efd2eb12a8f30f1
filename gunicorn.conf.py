"""gunicorn's settings for the web tier: the one place they are written.

gunicorn reads this file from its working directory (``/app`` in the image), so the image,
``deploy/compose.yaml`` and ``deploy/k8s/web.yaml`` all run plain ``gunicorn crm.wsgi`` and
the benchmarks' servers (``benchmarks/harness.py``) take the worker class from here.
docs/operations.md ("Processes") says why each value is what it is.

Per deployment, from the environment:

- ``WEB_CONCURRENCY``: worker processes (about one per core; default 4);
- ``GUNICORN_THREADS``: threads per worker (default 4);
- ``GUNICORN_ACCESS_LOG``: where the access log goes (default ``-``, standard output; empty
  for none, as the benchmarks run);
- ``PROMETHEUS_MULTIPROC_DIR``: a folder of the pod's own where the workers keep their metric
  samples, so a scrape answered by any worker counts all of them (docs/operations.md,
  "Metrics"); emptied when gunicorn starts, cleaned of each dead worker's gauges.
"""

import os
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# gthread that spreads new connections over the workers and answers a kept-alive
# connection's next request on the thread that answered the last one (crm/web_worker.py).
worker_class = "crm.web_worker.KeepAliveThreadWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
graceful_timeout = 30
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None


def on_starting(server):
    """Samples left by a previous run of the pod would be counted again: start empty."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for samples in Path(folder).glob("*.db"):
            samples.unlink()


def child_exit(server, worker):
    """With ``PROMETHEUS_MULTIPROC_DIR`` set, a dead worker's live gauges are dropped, so the
    scrape of any worker answers for the pod's live workers only."""
    from crm.metrics import child_exit as drop_dead_worker

    drop_dead_worker(server, worker)
