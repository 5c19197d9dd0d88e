#!/usr/bin/env bash
# Installs everything Queue needs on a fresh Debian/Ubuntu machine: sqitch (system
# package), uv (pinned, in .tools/) and the locked Python environment (.venv/); and
# for the deployment tests, PgBouncer and podman with runc and debootstrap (the
# container test builds its base image from Debian's packages, docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9

missing=()
if ! command -v sqitch >/dev/null 2>&1 || ! perl -MDBD::Pg -e 1 >/dev/null 2>&1; then
    missing+=(sqitch libdbd-pg-perl)
fi
# pgbouncer, runc and debootstrap live in /usr/sbin, outside a user's PATH
for tool in pgbouncer podman runc debootstrap; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        missing+=("$tool")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]} from Debian packages" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    python3 -m venv .tools
    .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

.tools/bin/uv sync --frozen --quiet
