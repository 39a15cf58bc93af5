#!/usr/bin/env bash
# Builds the native addon (build/Release/tersor.node), the C++ tests and the benchmark tool with
# cmake-js + Ninja. Incremental: a second run only recompiles what changed. A lock serialises
# concurrent builds of the same tree. Extra arguments go to cmake-js (e.g. --CDTERSOR_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
exec 9>build/.lock
flock 9
jobs="${TERSOR_BUILD_JOBS:-$(nproc)}"
extra=()
if [ -n "${TERSOR_CUDA:-}" ]; then extra+=("--CDTERSOR_CUDA=${TERSOR_CUDA}"); fi
common=(--log-level warn -G Ninja --out build "${extra[@]}" "$@")
# A failed first configure leaves a CMakeCache without build.ninja, which `cmake-js build` would
# not redo: configure explicitly whenever the generated build is missing.
if [ ! -f build/build.ninja ]; then npx --no-install cmake-js configure "${common[@]}"; fi
npx --no-install cmake-js build --parallel "$jobs" "${common[@]}"
