#!/usr/bin/env bash
# Prepares, on this (Debian 12, x86-64) machine, what scripts/gpu-check.sh
# needs to build mpcc on a GPU machine that has CUDA, a C compiler, CMake and
# python3 with torch but not mpcc's Debian build dependencies (LLVM 14,
# protobuf-c, cmocka, the ONNX test data) and cannot reach a registry:
# downloads exactly those .deb packages with `apt-get download` (no root,
# nothing installed here) into .gpu-deps/debs/, which .gitignore ignores, so
# the device tool carries it (`carry: [".gpu-deps"]`). gpu-check.sh unpacks
# them with `dpkg -x` into a prefix under out/gpu-check/ (never into /) when
# the system lacks them, and points CMake, pkg-config, PATH and
# LD_LIBRARY_PATH there.
#
# Size: the device tool carries 64 MiB with the working tree, so llvm-14-dev
# (34 MB, mostly static libraries) is not carried: only its C API headers
# (include/llvm-c, a link into usr/include/llvm-c-14, and include/llvm/Config)
# are, as .gpu-deps/llvm-14-headers.tar.xz;
# the library is libllvm14's libLLVM-14.so.1, and gpu-check.sh makes the
# libLLVM-14.so link and a stand-in llvm-config answering --includedir and
# --libdir (all CMakeLists.txt asks of it). libLLVM's own dependencies that a
# CUDA image may lack (z3, ICU 72 behind libxml2, libedit, libffi) come too;
# a library the system already has is used first only if it is the same
# soname, so carrying them is harmless.
# usage: bash scripts/gpu-prep.sh   (from the source root); prints the size.
set -euo pipefail
dir=.gpu-deps
pkgs=(
  libllvm14 libz3-4 libxml2 libicu72 libffi8 libedit2 libtinfo6 libbsd0 libmd0 # libLLVM-14.so.1
  libprotobuf-c1 libprotobuf-c-dev protobuf-c-compiler libprotoc32 libprotobuf32 # protobuf-c
  libonnx-dev      # /usr/include/onnx/onnx.proto
  libcmocka0 libcmocka-dev # the unit tests (test_cuda_run)
  libonnx-testdata # the conformance suite
  pkgconf pkgconf-bin libpkgconf3 # pkg-config, where the image has none
)
if [ "$(uname -m)" != x86_64 ]; then
  echo "gpu-prep: this machine is $(uname -m); the GPU machine is x86-64: run it on x86-64" >&2
  exit 1
fi
rm -rf "$dir"
mkdir -p "$dir/debs" "$dir/tmp"
(cd "$dir/debs" && apt-get download -q "${pkgs[@]}" >/dev/null)
(cd "$dir/tmp" && apt-get download -q llvm-14-dev >/dev/null)
dpkg -x "$dir"/tmp/llvm-14-dev_*.deb "$dir/tmp/x"
tar -C "$dir/tmp/x" -cJf "$dir/llvm-14-headers.tar.xz" \
  usr/lib/llvm-14/include/llvm-c usr/include/llvm-c-14 usr/lib/llvm-14/include/llvm/Config
rm -rf "$dir/tmp"
n=$(ls "$dir"/debs/*.deb | wc -l)
[ "$n" = "${#pkgs[@]}" ] || { echo "gpu-prep: got $n of ${#pkgs[@]} packages" >&2; exit 1; }
echo "gpu-prep: $n packages and the LLVM 14 C headers in $dir ($(du -sh "$dir" | cut -f1));" \
  "run the check with carry [\"$dir\"]"
