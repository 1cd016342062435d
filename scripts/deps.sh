#!/usr/bin/env bash
# Installs the Debian packages mpcc needs, when any is missing. Run as root it
# uses apt-get; otherwise it names what is missing and stops.
set -euo pipefail
pkgs=(cmake gcc make pkg-config libprotobuf-c-dev protobuf-c-compiler libonnx-dev
      llvm-14-dev libcmocka-dev libonnx-testdata python3-numpy python3-sklearn python3-onnx
      python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
