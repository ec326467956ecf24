#!/bin/bash
# Build the gpuwatchd image from the .deb in dist/ with podman, buildah or docker.
#
#   packaging/build-image.sh [TAG]      (default TAG: gpuwatchd:<version of the .deb>)
#
# Needs the .deb from scripts/build-deb.sh and a builder (Debian: apt-get install podman).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls -1 dist/gpuwatchd_*_all.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$deb" ]; then
    echo "build-image.sh: no dist/gpuwatchd_*_all.deb: run scripts/build-deb.sh first" >&2
    exit 1
fi
version=$(basename "$deb" | cut -d_ -f2)
tag=${1:-gpuwatchd:$version}
for builder in podman buildah docker; do
    if command -v "$builder" >/dev/null 2>&1; then
        case $builder in
            # the build context is dist/: nothing of the work tree (.venv, tests) goes in
            buildah) exec buildah bud --build-arg DEB="$(basename "$deb")" \
                         -f packaging/Containerfile -t "$tag" dist ;;
            *) exec "$builder" build --build-arg DEB="$(basename "$deb")" \
                   -f packaging/Containerfile -t "$tag" dist ;;
        esac
    fi
done
echo "build-image.sh: no podman, buildah or docker (apt-get install podman)" >&2
exit 1
