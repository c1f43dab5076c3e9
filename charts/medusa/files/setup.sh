#!/bin/sh
# Provisions the store and its admin user. Idempotent: safe on every install and upgrade.
set -eu

log() { printf '%s setup: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

cd "$MEDUSA_WORKDIR"
# The backend's init container ran `medusa db:migrate` before /health answered.
node /opt/storesync/wait-for-backend.mjs

log "provisioning the store (region, shipping, publishable key, sample product)"
rm -f "$STATE_DIR/provisioned" "$STATE_DIR/admin-user"
"$MEDUSA_CLI" exec /opt/storesync/provision.js
if [ ! -f "$STATE_DIR/provisioned" ]; then
  log "provisioning did not complete (see the errors above)"
  exit 1
fi

if [ "$(cat "$STATE_DIR/admin-user")" = "missing" ]; then
  log "creating admin user ${ADMIN_EMAIL}"
  "$MEDUSA_CLI" user -e "$ADMIN_EMAIL" -p "$ADMIN_PASSWORD"
else
  log "admin user ${ADMIN_EMAIL} already exists"
fi
log "done"
