#!/bin/bash
# PostgreSQL's entrypoint in the compose stack. On the first start (no cluster in $PGDATA) it
# makes one (UTF8, C.UTF-8), with local connections trusted (who can exec into the container is
# its root anyway) and connections over the network by password (scram-sha-256), and the role
# and database POSTGRES_USER (mailbeacon) with POSTGRES_PASSWORD; all in $PGDATA.new, renamed
# to $PGDATA when done, so that a first start cut short is simply made again. Then it runs the
# server, listening on every address of the container.
set -euo pipefail
: "${PGDATA:?}"
user=${POSTGRES_USER:-mailbeacon}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?the first start needs POSTGRES_PASSWORD (the password of the role $user)}"
  new=$PGDATA.new
  rm -rf "$new"
  initdb -D "$new" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
    -U postgres > /dev/null
  echo "host all all all scram-sha-256" >> "$new/pg_hba.conf"
  # only the Unix socket while the role and the database are made
  pg_ctl -D "$new" -o "-c listen_addresses=''" -w -s start
  psql -q -v ON_ERROR_STOP=1 -U postgres -d postgres -v user="$user" -v db="$db" -v pw="$POSTGRES_PASSWORD" << 'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
SQL
  pg_ctl -D "$new" -m fast -w -s stop
  mv "$new" "$PGDATA"
  echo "postgres-entrypoint: made the cluster in $PGDATA, role $user and database $db"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
