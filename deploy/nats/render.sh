#!/bin/sh
# Render the accounts files that hub.conf and leaf.conf include from the
# inventory. Usage: deploy/nats/render.sh [INVENTORY] [SITE]
set -eu
here=$(dirname "$0")
inventory=${1:-$here/inventory.toml}
site=${2:-site-a}
python -m continuum.shared.deploy_config accounts --inventory "$inventory" --server hub > "$here/hub-accounts.conf"
python -m continuum.shared.deploy_config accounts --inventory "$inventory" --server leaf --site "$site" > "$here/leaf-accounts.conf"
