#!/usr/bin/env bash
# Install the Debian packages that `make test` needs when they are missing: as root directly,
# with passwordless sudo otherwise; if neither is possible, stop at once with the exact command.
#   chromium               the real-browser tests (Playwright drives Debian's build; never `playwright install`)
#   dataset-fashion-mnist  tests and benchmarks on a full-size dataset
#   npm                    the page's libraries from the npm lockfile
#   gcc                    the fused CPU training kernels (tests fail on purpose without them)
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v npm >/dev/null || need+=(npm)
command -v gcc >/dev/null || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "digitlab: missing system packages: ${need[*]}" >&2
  echo "digitlab: install them with:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "digitlab: missing system packages: ${need[*]} (no apt-get here: install them with your package manager)" >&2
  exit 1
fi
echo "digitlab: installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
