#!/bin/sh
# Installs the built library into a temporary prefix and builds the example
# against it with pkg-config and with find_package(cosmicsync), running both.
set -eu
build=$1
src=$2
prefix=$(mktemp -d /tmp/cs-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name cosmicsync.pc -path '*pkgconfig*' -exec dirname {} \; | head -n1)
[ -n "$libdir" ] || { echo "cosmicsync.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$libdir"
test -f "$prefix/include/cosmicsync.h" || { echo "header not installed"; exit 1; }
${CC:-cc} -std=c11 -Wall -Werror -o "$prefix/offline_sync" "$src/examples/offline_sync.c" \
  $(pkg-config --cflags --libs cosmicsync) -Wl,-rpath,"$libdir/.."
"$prefix/offline_sync" >"$prefix/out.txt"
grep -q converged "$prefix/out.txt" || { cat "$prefix/out.txt"; exit 1; }
# The CMake package.
mkdir -p "$prefix/cm"
cat >"$prefix/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(cosmicsync REQUIRED)
add_executable(consumer $src/examples/offline_sync.c)
target_link_libraries(consumer PRIVATE cosmicsync::cosmicsync)
CM
cmake -S "$prefix/cm" -B "$prefix/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/cm/build" >/dev/null
# Built is not enough: the consumer must find the installed library and run.
"$prefix/cm/build/consumer" >"$prefix/cm/out.txt"
grep -q converged "$prefix/cm/out.txt" || { cat "$prefix/cm/out.txt"; exit 1; }
echo "install: pkg-config and find_package builds both run"
