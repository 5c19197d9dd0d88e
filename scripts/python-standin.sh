#!/usr/bin/env bash
# A stand-in for python:3.11-slim-bookworm, built from Debian's own packages, for
# machines that cannot pull from Docker Hub (this project's test machines reach only
# Debian, PyPI and npm). Prints the image's name on stdout.
#
#   scripts/python-standin.sh            build once, then reuse from podman's storage
#   podman build --build-arg PYTHON_IMAGE="$(scripts/python-standin.sh)" ...
#
# The image is named after a hash of this file, so it is rebuilt only when the recipe
# changes: a machine keeps it like a pulled base image. What it does NOT reproduce of
# the official image (docs/deploy.md): Python is Debian's 3.11.2 in /usr/bin, not
# python.org's latest 3.11 in /usr/local; pip is Debian's; the package set is close
# (slim Debian, ca-certificates, netbase, tzdata) but not identical.
#
# Needs root (debootstrap, rootful podman) and the packages podman, runc, debootstrap.
set -euo pipefail

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# What the official slim image carries beside Python, and what `python` and
# `python -m venv` need to behave the same.
PACKAGES=ca-certificates,netbase,tzdata,python3,python3-venv,python3-pip,python-is-python3

PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
KEY="$(sha256sum "$0" | cut -c1-12)"
IMAGE="localhost/queue-python-standin:3.11-${SUITE}-${KEY}"

if "${PODMAN[@]}" image exists "$IMAGE"; then
    echo "$IMAGE"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "python-standin: debootstrap and rootful podman need root" >&2
    exit 1
fi

ROOTFS="$(mktemp -d /var/tmp/queue-standin.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
echo "python-standin: debootstrap $SUITE (minbase) into $ROOTFS" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >&2

# The same sources as Debian's official images: the release, its updates, security.
rm -f "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# "slim": documentation, manuals and translations stay out, now and in every later
# apt-get install on top of this image, as in debian:bookworm-slim.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
EOF
cat > "$ROOTFS/etc/apt/apt.conf.d/slim" <<'EOF'
Acquire::Languages "none";
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF

# Security and point-release updates, as the official image is rebuilt with them.
chroot "$ROOTFS" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get upgrade -y -qq >/dev/null && apt-get clean' >&2

find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/{info,locale,man,groff,lintian}/* \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/log/*.log
# The official image's Python is its own, so pip installs into it; Debian's marks
# itself externally managed (PEP 668), which would refuse the builder's `pip install`.
rm -f "$ROOTFS"/usr/lib/python3.*/EXTERNALLY-MANAGED

echo "python-standin: importing $IMAGE" >&2
tar --numeric-owner -C "$ROOTFS" -c . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "stand-in for python:3.11-slim-bookworm from Debian packages" \
    - "$IMAGE" >&2
echo "$IMAGE"
