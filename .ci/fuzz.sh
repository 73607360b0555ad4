#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for a bounded time when a nightly toolchain is present
# (cargo-fuzz needs nightly's sanitizer flags); on stable-only machines the seed corpora
# are still replayed by `cargo test` (tests/fuzz_corpus.rs), so this step just skips.
# FUZZ_SECONDS per target (default 15) keeps install + build + runs under ~8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "skipped: no nightly toolchain"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi

seconds=${FUZZ_SECONDS:-15}
cd fuzz
cargo +nightly fuzz build
failed=0
for target in $(cargo +nightly fuzz list); do
    # New inputs go to a scratch directory so only hand-made seeds are committed.
    scratch=target/corpus/$target
    mkdir -p "$scratch" "regressions/$target"
    echo "== fuzz $target (${seconds}s)"
    if ! cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 2>&1 | tail -n 25; then
        failed=1
    fi
done
# A crash leaves its input in fuzz/artifacts/<target>/: minimize it
# (cargo fuzz tmin), fix the bug, and add it under fuzz/regressions/<target>/.
exit "$failed"
