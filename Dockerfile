# syntax=docker/dockerfile:1
# Multi-stage: build the locked virtual environment, then a slim non-root runtime.
# Web (default CMD), worker and beat all run from this image with different commands.

FROM python:3.12-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
# collectstatic imports the settings, which need a DATABASE_URL; nothing connects to it.
RUN DATABASE_URL=postgres://build@localhost/build .venv/bin/python manage.py collectstatic --noinput

FROM python:3.12-slim-bookworm
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=crm.settings.production
RUN useradd --system --uid 10001 --home /app crm
WORKDIR /app
COPY --from=build --chown=crm:crm /app /app
USER crm
EXPOSE 8000
# gunicorn.conf.py (read from /app) sets the worker class, threads, keep-alive and the
# metrics hook; WEB_CONCURRENCY sets the processes (docs/operations.md, "Processes").
CMD ["gunicorn", "crm.wsgi"]
