#!/bin/sh
# Writes the server address and the login PgBouncer uses from the environment (never baked
# into the image), then runs PgBouncer in the foreground.
set -eu
: "${DB_HOST:?DB_HOST is the PostgreSQL server}"
: "${DB_USER:?DB_USER is the database user}"
: "${DB_PASSWORD:?DB_PASSWORD is the database password}"
RUN_DIR=/tmp/pgbouncer
mkdir -p "$RUN_DIR"
umask 077
printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" > "$RUN_DIR/userlist.txt"
printf '[databases]\n* = host=%s port=%s\n' "$DB_HOST" "${DB_PORT:-5432}" > "$RUN_DIR/databases.ini"
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
