# tests/build: the build system itself (configure's checks), run for real.

# Issue 12: configure refuses any libh2o other than the one server/h2_guard.c is written for.
TESTS += tests/build/test_configure_h2o_pin.sh
EXTRA_DIST += tests/build/test_configure_h2o_pin.sh
