# tests/contrib: the contrib/ scripts, run for real with stubbed system tools.

# Issue 12: contrib/quickstart installs the build-and-run packages, not the test tools.
TESTS += tests/contrib/test_quickstart_packages.sh
EXTRA_DIST += tests/contrib/test_quickstart_packages.sh

# Issue 16: contrib/prometheus/alerts.yml passes `promtool check rules` and its unit tests.
TESTS += tests/contrib/test_prometheus_rules.sh
EXTRA_DIST += tests/contrib/test_prometheus_rules.sh contrib/prometheus/alerts.yml contrib/prometheus/alerts_test.yml \
	contrib/grafana/tollgate.json
