# Two commands on a new machine: `make run` and `make test` (plus `make bench`).
# The virtual environment (.venv/) is built from uv.lock; uv itself lives in .tools/.

PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test test-dates test-pgbouncer lint typecheck format bench loadtest manage browser pgbouncer wrk venv clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python "$(PYTHON)"
	touch $@

venv: $(VENV)/.synced

run: venv  ## the platform: web on 127.0.0.1:8000, Celery worker and beat (embedded PostgreSQL/Redis unless URLs are set)
	$(PY) -m crm.local run

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The django-stubs plugin loads the settings, which need a database URL; mypy never connects.
typecheck: venv  ## mypy (with django-stubs) over crm/, customers/ and marketing/
	DATABASE_URL="$${DATABASE_URL:-postgres://unused/typecheck}" $(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

browser:  ## Debian's chromium for the Playwright tests (installed once, as root)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

pgbouncer:  ## Debian's PgBouncer for `make test-pgbouncer` (installed once, as root)
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || { \
	  echo "Installing Debian's pgbouncer for the pooled test run..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }

# The HTTP figures of the benchmarks load the server from wrk (a C load generator, about a
# tenth of the Python clients' CPU on the same 2 cores); without it they fall back to the
# Python clients alone, and say so.
wrk:  ## Debian's wrk for the benchmarks' HTTP figures (installed once, as root)
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "Installing Debian's wrk for the benchmarks' HTTP load..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	  || echo "wrk could not be installed: the HTTP figures use the Python load clients only."; }

# The tests run in parallel (pytest-xdist), each worker on a test database and a Redis
# database of its own (crm/settings/test.py); much of a test's time is spent waiting on
# PostgreSQL, a worker process or the browser, so more workers than cores pays. Tests are
# handed out one at a time (the long ones come first: tests/conftest.py), so no worker
# queues several long ones. TEST_WORKERS=0 runs them one by one in a single process.
TEST_WORKERS ?= 3
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxschedchunk 1)

test: venv lint typecheck browser  ## lint, types and every test, against real PostgreSQL and Redis
	$(PY) -m crm.local exec -- $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m crm.local exec -- $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The whole suite once more through PgBouncer in transaction pooling, as production runs it
# (docs/operations.md, "PgBouncer"). pytest-django creates the test database through the
# pooler; --reuse-db keeps it from dropping it at the end, which PgBouncer's open server
# connections would refuse: the launcher drops it on the server before and after. The tests
# marked `unpooled` are left out: their processes never connect through the pooler (`make
# run` starts an embedded PostgreSQL; the benchmarks and the load test are measured straight
# against PostgreSQL), so a second run would repeat the first (`make test` runs them).
test-pgbouncer: venv browser pgbouncer  ## every test but the unpooled through PgBouncer (transaction mode)
	$(PY) -m crm.local exec -- $(PY) -m crm.devtools.pgbouncer exec --fresh-test-database -- \
	  $(PY) -m pytest $(XDIST) --reuse-db -m "not unpooled" $(PYTEST_ARGS)

# The date-dependent suites with Python's clock moved across a year (UK DST changes included);
# browser and real-worker tests keep the real clock (their other processes do not move).
TEST_DATES ?= 2027-01-15T09:00:00+00:00 2027-03-28T00:30:00+00:00 2027-07-01T21:45:00+00:00 2027-10-31T00:59:00+00:00
test-dates: venv  ## the date-dependent tests at several dates across a year
	@for at in $(TEST_DATES); do echo "== clock at $$at"; \
	  CRM_TEST_CLOCK=$$at $(PY) -m crm.local exec -- $(PY) -m pytest -q -p no:cacheprovider \
	    -m "not browser and not worker" tests/crm/test_rules.py tests/crm/test_one_clock.py \
	    tests/events tests/marketing tests/customers tests/automation tests/scoring tests/social \
	    tests/backfill || exit 1; done

bench: venv wrk  ## the benchmark suite; writes docs/benchmarks.md
	$(PY) -m crm.local exec -- $(PY) -m benchmarks $(BENCH_ARGS)

# The platform's traffic mixed (locust) against gunicorn and a Celery worker at 1M profiles;
# figures into docs/benchmarks.md. LOADTEST_ARGS="--users 24 --duration 3m --profiles N".
loadtest: venv  ## the load test; writes docs/benchmarks.md ("Load test")
	$(PY) -m crm.local exec -- $(PY) -m benchmarks.loadtest $(LOADTEST_ARGS)

manage: venv  ## make manage ARGS="createsuperuser"
	$(PY) -m crm.local exec -- $(PY) manage.py $(ARGS)

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache .mypy_cache
