#!/usr/bin/env bash
# Every scenario of issue 6 on both backends, as docs/PERFORMANCE.md's
# "Latest figures" are made: builds the server and the bench first (a stale
# release binary would be measured otherwise), then writes each run's JSON
# and histogram to docs/perf/PREFIX-NAME.{json,svg} and the log to stdout.
#
#   crates/ramphook-bench/batch.sh nov30 | tee docs/perf/nov30-batch-$(git rev-parse --short HEAD).log
#
# PostgreSQL runs use BENCH_DATABASE_URL (default
# postgres://root@127.0.0.1:5432/bench), dropped and created empty before
# each run. The 1,000,000-delivery backlogs take most of the half hour.
set -euo pipefail

prefix=${1:?usage: batch.sh PREFIX (the file names in docs/perf begin with it)}
cd "$(dirname "$0")/../.."
cargo build --release -p ramphook -p ramphook-bench
echo "=== at $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' with uncommitted changes'), $(date -u +%FT%TZ)"

bench=./target/release/ramphook-bench
pg=(--db postgres --database-url "${BENCH_DATABASE_URL:-postgres://root@127.0.0.1:5432/bench}" --fresh-database)
run() {
    local name=$1
    shift
    echo "=== $name: $*"
    "$bench" "$@" --out "docs/perf/$prefix-$name.json" 2>&1 | grep -v -E '^\s*$|━|results written'
}

run sqlite-single --scenario single --duration 20s --orders 80000
run sqlite-fanout --scenario fanout --duration 10s
run sqlite-single-rate1000 --scenario single --rate 1000/s --duration 20s
run sqlite-slow-neighbour-rate1000 --scenario slow-neighbour --rate 1000/s --duration 20s
run sqlite-validation-rate500 --scenario validation --rate 500/s --duration 20s
run sqlite-backlog-1m --scenario backlog --backlog 1000000 --drain-timeout 900s
run pg-single-10k "${pg[@]}" --scenario single --duration 20s --orders 10000
run pg-single-40k "${pg[@]}" --scenario single --duration 20s --orders 40000
run pg-single-40k-keyed "${pg[@]}" --scenario single --duration 20s --orders 40000 --idempotency-keys
run pg-fanout "${pg[@]}" --scenario fanout --duration 10s
run pg-single-rate1000 "${pg[@]}" --scenario single --rate 1000/s --duration 20s
run pg-slow-neighbour-rate1000 "${pg[@]}" --scenario slow-neighbour --rate 1000/s --duration 20s
run pg-validation-rate500 "${pg[@]}" --scenario validation --rate 500/s --duration 20s
run pg-backlog-100k "${pg[@]}" --scenario backlog --backlog 100000
run pg-backlog-1m "${pg[@]}" --scenario backlog --backlog 1000000 --drain-timeout 900s
echo "=== done"
