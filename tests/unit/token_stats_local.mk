# tests/unit/test_token_stats: shm/token_stats.c with real processes (claims, GCRA and quota
# CAS races, seeding elections, live counts and credits); tests/unit/test_policy: the pure
# parts of server/policy.c (CIDRs, UTC quota periods), linked against the server library.
# Included from tests/local.mk, after the shared test variables.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_token_stats tests/unit/test_policy tests/unit/test_forwarded tests/unit/test_proxy_protocol
TESTS += tests/unit/test_token_stats tests/unit/test_policy tests/unit/test_forwarded tests/unit/test_proxy_protocol

tests_unit_test_token_stats_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_token_stats_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_token_stats_SOURCES = tests/unit/test_token_stats.c tests/unit/race.h
tests_unit_test_token_stats_LDADD = shm/libtgshm.a $(CRITERION_LIBS) -lrt

tests_unit_test_policy_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_policy_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_policy_SOURCES = tests/unit/test_policy.c
tests_unit_test_policy_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

# tests/unit/test_forwarded: server/forwarded.c, the X-Forwarded-For / Forwarded parser.
tests_unit_test_forwarded_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_forwarded_CFLAGS = $(tests_unit_test_policy_CFLAGS)
tests_unit_test_forwarded_SOURCES = tests/unit/test_forwarded.c
tests_unit_test_forwarded_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

# tests/unit/test_proxy_protocol: server/proxy_protocol.c, the PROXY protocol v1/v2 parser.
tests_unit_test_proxy_protocol_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_proxy_protocol_CFLAGS = $(tests_unit_test_policy_CFLAGS)
tests_unit_test_proxy_protocol_SOURCES = tests/unit/test_proxy_protocol.c
tests_unit_test_proxy_protocol_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif

# tests/unit/test_lease_line: shm/lease_line.c (grant balances, racing processes);
# tests/unit/test_lease_plan: server/lease_plan.c (ask sizes, quota returns, outage shares).
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_lease_line tests/unit/test_lease_plan
TESTS += tests/unit/test_lease_line tests/unit/test_lease_plan

tests_unit_test_lease_line_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_lease_line_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_lease_line_SOURCES = tests/unit/test_lease_line.c tests/unit/race.h
tests_unit_test_lease_line_LDADD = shm/libtgshm.a $(CRITERION_LIBS) -lrt

tests_unit_test_lease_plan_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_lease_plan_CFLAGS = $(tests_unit_test_policy_CFLAGS)
tests_unit_test_lease_plan_SOURCES = tests/unit/test_lease_plan.c
tests_unit_test_lease_plan_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif
