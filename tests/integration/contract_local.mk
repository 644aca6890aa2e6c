# tests/integration/test_contract: docs/openapi.yaml against a real tollgated (every operation's
# answers checked by tests/contract/validate.mjs, ajv), `redocly lint` of the description, and
# no citation of files outside the repository. node + the packages pinned by
# tests/contract/package-lock.json (contrib/test runs `npm ci` there). Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_contract
TESTS += tests/integration/test_contract
tests_integration_test_contract_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_contract_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_contract_SOURCES = tests/integration/test_contract.c
tests_integration_test_contract_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif

EXTRA_DIST += tests/contract/package.json tests/contract/package-lock.json tests/contract/validate.mjs \
	tests/contract/redocly.yaml tests/contract/.redocly.lint-ignore.yaml
