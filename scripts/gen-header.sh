#!/usr/bin/env bash
# Regenerates include/softadastra.h from src/ffi with cbindgen (through tests/c_header.rs,
# which otherwise checks that the committed header is current). Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
SOFTADASTRA_WRITE_HEADER=1 cargo test --quiet --test c_header
git --no-pager diff --stat -- include/softadastra.h
