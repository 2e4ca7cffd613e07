#!/usr/bin/env bash
# Builds the library and the softadastra command with the size profile (Cargo.toml's
# [profile.release-small]) for each target and checks them against the budgets of
# docs/edge.md: libsoftadastra.so at most 1.5 MB, the command at most 4 MB (stripped,
# 1 MB = 1,000,000 bytes). Also checks that the library can still unwind (it imports the
# unwinder's _Unwind_RaiseException: panic = "unwind", so the C boundary's panic catch
# works). Prints a table; exits 1 when a budget is missed.
#
#   scripts/size-report.sh                      x86_64, aarch64 and armv7
#   scripts/size-report.sh x86_64 armv7         some of them
#   scripts/size-report.sh armv7-thumb          32-bit Arm in Thumb-2 code (rustup target add
#                                               thumbv7neon-unknown-linux-gnueabihf first)
#
# The library is built as a cdylib alone (`cargo rustc --crate-type cdylib`): rustc does
# link-time optimisation only when every crate type of the build allows it, and Cargo.toml's
# [lib] also asks for an rlib (for the CLI and the tests), which does not; built together,
# the library would come out without LTO, 25% larger (docs/edge.md, "Size").
#
# Each target is a link-time-optimised build of a few minutes; uses CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_BUDGET=1500000
CLI_BUDGET=4000000

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64 aarch64 armv7)
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

rows=()
failed=0
for name in "${targets[@]}"; do
  case "$name" in
    x86_64) triple="" gnu="" ;;
    aarch64) triple=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu- ;;
    armv7) triple=armv7-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf- ;;
    armv7-thumb) triple=thumbv7neon-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf- ;;
    *) echo "unknown target $name (x86_64, aarch64, armv7, armv7-thumb)" >&2; exit 2 ;;
  esac
  args=(--locked --profile release-small)
  out="$target_dir/release-small"
  if [ -n "$triple" ]; then
    args+=(--target "$triple")
    out="$target_dir/$triple/release-small"
  fi
  echo "== cargo rustc/build ${args[*]} (library as a cdylib, softadastra command)"
  cargo rustc "${args[@]}" --lib --crate-type cdylib
  lib="$out/libsoftadastra.so"
  # The profile strips; strip again to be sure the figures are of stripped files. (Before
  # the command's build, which builds the library as a dependency, not in $out.)
  "${gnu}strip" --strip-all -o "$out/libsoftadastra.stripped.so" "$lib"
  cargo build "${args[@]}" -p softadastra-cli --bin softadastra
  cli="$out/softadastra"
  "${gnu}strip" --strip-all -o "$out/softadastra.stripped" "$cli"
  lib_bytes=$(stat -c %s "$out/libsoftadastra.stripped.so")
  cli_bytes=$(stat -c %s "$out/softadastra.stripped")
  verdict=""
  if [ "$lib_bytes" -gt "$LIB_BUDGET" ]; then
    verdict="library over budget"
    failed=1
  fi
  if [ "$cli_bytes" -gt "$CLI_BUDGET" ]; then
    verdict="${verdict:+$verdict; }command over budget"
    failed=1
  fi
  # (grep reads a string, not a pipe: with pipefail, grep -q closing a pipe early fails nm.)
  if ! grep -q '_Unwind_RaiseException' <<<"$("${gnu}nm" -D --undefined-only "$out/libsoftadastra.stripped.so")"; then
    verdict="${verdict:+$verdict; }the library cannot unwind (panic = abort?)"
    failed=1
  fi
  rows+=("$(printf '| %-8s | %17s | %11s | %s |' "$name" "$lib_bytes" "$cli_bytes" "${verdict:-within budget}")")
done

echo
echo "Stripped sizes in bytes, profile release-small (budgets: library $LIB_BUDGET, command $CLI_BUDGET):"
echo
printf '| %-8s | %17s | %11s | %s |\n' target libsoftadastra.so softadastra verdict
echo '|----------|-------------------|-------------|---------|'
printf '%s\n' "${rows[@]}"
exit $failed
