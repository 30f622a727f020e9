#!/usr/bin/env bash
# Install a Mesa >= 25 lavapipe (CPU Vulkan driver) so the webgpu backend has a software adapter without a GPU.
# Dawn (npm `webgpu`) rejects Debian 12's own Mesa 22 lavapipe; bookworm-backports carries Mesa 25.
# Idempotent; needs root (CI and developer machines run as root). Skips quietly where apt is absent.
set -euo pipefail

have_new_lavapipe() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 25
}

if have_new_lavapipe; then
  echo "lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "lavapipe: no apt-get here; install Mesa >= 25 lavapipe by hand (webgpu tests will skip)" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
if ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian ${codename}-backports main" | $SUDO tee /etc/apt/sources.list.d/${codename}-backports.list >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t "${codename}-backports" mesa-vulkan-drivers libvulkan1 >/dev/null
have_new_lavapipe || { echo "lavapipe: mesa-vulkan-drivers >= 25 not available from ${codename}-backports" >&2; exit 1; }
echo "lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
