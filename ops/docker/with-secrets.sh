#!/bin/sh
# with-secrets COMMAND [ARG...]: the backend image's ENTRYPOINT, under tini
# (ENTRYPOINT ["tini", "--", "with-secrets"]): exports the secrets found in the directory
# mounted at /run/taskbroker, then replaces itself with COMMAND (tini still forwards
# signals to it). In docker-compose.yml each service mounts there the volume of its own
# role, which the one-shot `secrets` service (ops/docker/make-secrets.py) filled with that
# role's files only; so a process gets exactly the secrets of its role.
#
#   file                 variable
#   redis_url            REDIS_URL            (compose's Redis, with its password)
#   mongodb_url          MONGODB_URL          (compose's MongoDB, with its root user)
#   data_service_token   DATA_SERVICE_TOKEN
#   auth_secret          AUTH_SECRET
#   dashboard_password   DASHBOARD_PASSWORD
#   webhook_secret       WEBHOOK_SECRET
#   metrics_token        METRICS_TOKEN
#
# A variable that is already set and not empty (.env through docker-compose.yml, the shell,
# Kubernetes' Secret) wins over its file; a missing file leaves its variable unset. Without
# the directory (Kubernetes, a plain `docker run`) it only runs COMMAND. The values never
# reach the command line or the log.
#
# `docker compose exec` does not go through the ENTRYPOINT: prefix a command that needs
# the secrets, e.g.  docker compose exec api with-secrets taskbroker users create NAME --admin
# (TASKBROKER_SECRETS_DIR moves the directory; the ops tests use it.)
set -eu

dir="${TASKBROKER_SECRETS_DIR:-/run/taskbroker}"

if [ -d "$dir" ]; then
    for pair in redis_url:REDIS_URL mongodb_url:MONGODB_URL \
                data_service_token:DATA_SERVICE_TOKEN auth_secret:AUTH_SECRET \
                dashboard_password:DASHBOARD_PASSWORD webhook_secret:WEBHOOK_SECRET \
                metrics_token:METRICS_TOKEN; do
        file=${pair%%:*}
        variable=${pair#*:}
        eval "current=\${$variable:-}"
        if [ -z "$current" ] && [ -s "$dir/$file" ]; then
            value=$(cat "$dir/$file")
            export "$variable=$value"
        fi
    done
fi

if [ "$#" -eq 0 ]; then
    echo "usage: with-secrets COMMAND [ARG...]" >&2
    exit 64
fi
exec "$@"
