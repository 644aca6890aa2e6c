# contrib/: benchmarks and helper programs that are not part of the product.
include contrib/bench/ring_local.mk
include contrib/bench/collector_bench.mk
include contrib/bench/bench_local.mk
include contrib/bench/usage_local.mk
include contrib/chaos.d/chaos_local.mk

# The folder rules (docs/architecture.md): a script test, one result in `make check`.
TESTS += contrib/check-layout
EXTRA_DIST += contrib/check-layout

# Every path and cited test in README.md and docs/ exists: a script test, one result.
TESTS += contrib/check-docs
EXTRA_DIST += contrib/check-docs
