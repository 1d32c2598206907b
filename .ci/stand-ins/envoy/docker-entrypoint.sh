#!/bin/sh
# The official Envoy image's entrypoint rules: a first argument starting
# with `-` runs envoy with it; $loglevel adds --log-level; as root (unless
# ENVOY_UID=0) it applies ENVOY_UID/ENVOY_GID to the envoy user, lets it
# write the container's stdout/stderr and runs the command as envoy.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- envoy "$@"
fi
if [ "$1" = envoy ] && [ -n "${loglevel:-}" ]; then
  set -- "$@" --log-level "$loglevel"
fi
if [ "$(id -u)" = 0 ] && [ "${ENVOY_UID:-}" != 0 ]; then
  if [ -n "${ENVOY_UID:-}" ]; then usermod -u "$ENVOY_UID" envoy; fi
  if [ -n "${ENVOY_GID:-}" ]; then groupmod -g "$ENVOY_GID" envoy; fi
  chown envoy:envoy /dev/stdout /dev/stderr 2>/dev/null || true
  exec su-exec envoy "$@"
fi
exec "$@"
