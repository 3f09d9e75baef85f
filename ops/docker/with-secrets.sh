#!/bin/sh
# with-secrets COMMAND [ARG...]: the backend image's ENTRYPOINT, under tini
# (ENTRYPOINT ["tini", "--", "with-secrets"]): exports the secrets docker-compose.yml's
# one-shot `secrets` service generated (ops/docker/make-secrets.py) into the volume mounted
# at /run/taskbroker, then replaces itself with COMMAND (tini still forwards signals to it).
#
#   file                 variable
#   redis_url            REDIS_URL            (compose's Redis, with its password)
#   data_service_token   DATA_SERVICE_TOKEN
#   auth_secret          AUTH_SECRET
#   dashboard_password   DASHBOARD_PASSWORD
#   webhook_secret       WEBHOOK_SECRET
#
# A variable that is already set and not empty (.env through docker-compose.yml, the shell,
# Kubernetes' Secret) wins over its file. Without the directory (Kubernetes, a plain
# `docker run`) it only runs COMMAND. The values never reach the command line or the log.
#
# `docker compose exec` does not go through the ENTRYPOINT: prefix a command that needs
# the secrets, e.g.  docker compose exec api with-secrets taskbroker users create NAME --admin
# (TASKBROKER_SECRETS_DIR moves the directory; the ops tests use it.)
set -eu

dir="${TASKBROKER_SECRETS_DIR:-/run/taskbroker}"

if [ -d "$dir" ]; then
    if [ -z "${REDIS_URL:-}" ] && [ -s "$dir/redis_url" ]; then
        REDIS_URL=$(cat "$dir/redis_url")
        export REDIS_URL
    fi
    if [ -z "${DATA_SERVICE_TOKEN:-}" ] && [ -s "$dir/data_service_token" ]; then
        DATA_SERVICE_TOKEN=$(cat "$dir/data_service_token")
        export DATA_SERVICE_TOKEN
    fi
    if [ -z "${AUTH_SECRET:-}" ] && [ -s "$dir/auth_secret" ]; then
        AUTH_SECRET=$(cat "$dir/auth_secret")
        export AUTH_SECRET
    fi
    if [ -z "${DASHBOARD_PASSWORD:-}" ] && [ -s "$dir/dashboard_password" ]; then
        DASHBOARD_PASSWORD=$(cat "$dir/dashboard_password")
        export DASHBOARD_PASSWORD
    fi
    if [ -z "${WEBHOOK_SECRET:-}" ] && [ -s "$dir/webhook_secret" ]; then
        WEBHOOK_SECRET=$(cat "$dir/webhook_secret")
        export WEBHOOK_SECRET
    fi
fi

if [ "$#" -eq 0 ]; then
    echo "usage: with-secrets COMMAND [ARG...]" >&2
    exit 64
fi
exec "$@"
