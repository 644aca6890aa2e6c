# tests/contrib: the contrib/ scripts, run for real with stubbed system tools.

# Issue 12: contrib/quickstart installs the build-and-run packages, not the test tools.
TESTS += tests/contrib/test_quickstart_packages.sh
EXTRA_DIST += tests/contrib/test_quickstart_packages.sh

# Issue 16: contrib/prometheus/alerts.yml passes `promtool check rules` and its unit tests.
TESTS += tests/contrib/test_prometheus_rules.sh
EXTRA_DIST += tests/contrib/test_prometheus_rules.sh contrib/prometheus/alerts.yml contrib/prometheus/alerts_test.yml \
	contrib/grafana/tollgate.json
# Issue 16: contrib/systemd/'s units verify; sysusers.d and tmpfiles.d make the user and spool.
TESTS += tests/contrib/test_systemd_units.sh
EXTRA_DIST += tests/contrib/test_systemd_units.sh contrib/systemd

# Issue 16: the Debian package test needs root and apt: contrib/test runs it once, not make check.
EXTRA_DIST += tests/contrib/test_deb.sh debian
