# tests/fuzz/: the libFuzzer targets, built here with the ordinary compiler as plain
# regression programs: replay_main.c feeds every file of a target's seed corpus
# (tests/fuzz/corpus/<target>/) to its LLVMFuzzerTestOneInput, so `make check` replays
# past findings. The fuzzing itself (clang, libFuzzer, ASan + UBSan) is contrib/fuzz.
# Included from tests/local.mk.
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/dict tests/fuzz/README.md tests/fuzz/make_seeds.c

if HAVE_TEST_DEPS

TG_FUZZ_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(JWT_CFLAGS) $(PQ_CFLAGS) $(H2O_CFLAGS)
# One link line for all: the archives each target does not use cost nothing.
TG_FUZZ_LDADD = server/libtgserver.a collector/libtgcollector.a partitions/libtgpartitions.a shm/libtgshm.a common/libtgcommon.a \
	$(JWT_LIBS) $(JANSSON_LIBS) $(PQ_LIBS) $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)
TG_FUZZ_CORPUS_DIR = $(abs_top_srcdir)/tests/fuzz/corpus

check_PROGRAMS += tests/fuzz/replay_apitoken tests/fuzz/replay_jwt tests/fuzz/replay_timefmt tests/fuzz/replay_uuid \
	tests/fuzz/replay_usage_record tests/fuzz/replay_config tests/fuzz/replay_usage_query tests/fuzz/replay_spill \
	tests/fuzz/replay_authz tests/fuzz/replay_login_body tests/fuzz/replay_token_body tests/fuzz/replay_proxy_path tests/fuzz/replay_token_list \
	tests/fuzz/replay_forwarded tests/fuzz/replay_proxy_protocol
TESTS += tests/fuzz/replay_apitoken tests/fuzz/replay_jwt tests/fuzz/replay_timefmt tests/fuzz/replay_uuid \
	tests/fuzz/replay_usage_record tests/fuzz/replay_config tests/fuzz/replay_usage_query tests/fuzz/replay_spill \
	tests/fuzz/replay_authz tests/fuzz/replay_login_body tests/fuzz/replay_token_body tests/fuzz/replay_proxy_path tests/fuzz/replay_token_list \
	tests/fuzz/replay_forwarded tests/fuzz/replay_proxy_protocol

tests_fuzz_replay_apitoken_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/apitoken"'
tests_fuzz_replay_apitoken_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_apitoken_SOURCES = tests/fuzz/fuzz_apitoken.c tests/fuzz/replay_main.c
tests_fuzz_replay_apitoken_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_jwt_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/jwt"'
tests_fuzz_replay_jwt_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_jwt_SOURCES = tests/fuzz/fuzz_jwt.c tests/fuzz/replay_main.c
tests_fuzz_replay_jwt_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_timefmt_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/timefmt"'
tests_fuzz_replay_timefmt_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_timefmt_SOURCES = tests/fuzz/fuzz_timefmt.c tests/fuzz/replay_main.c
tests_fuzz_replay_timefmt_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_uuid_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/uuid"'
tests_fuzz_replay_uuid_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_uuid_SOURCES = tests/fuzz/fuzz_uuid.c tests/fuzz/replay_main.c
tests_fuzz_replay_uuid_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_usage_record_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/usage_record"'
tests_fuzz_replay_usage_record_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_usage_record_SOURCES = tests/fuzz/fuzz_usage_record.c tests/fuzz/replay_main.c
tests_fuzz_replay_usage_record_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_config_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/config"'
tests_fuzz_replay_config_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_config_SOURCES = tests/fuzz/fuzz_config.c tests/fuzz/replay_main.c
tests_fuzz_replay_config_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_usage_query_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/usage_query"'
tests_fuzz_replay_usage_query_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_usage_query_SOURCES = tests/fuzz/fuzz_usage_query.c tests/fuzz/replay_main.c
tests_fuzz_replay_usage_query_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_spill_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/spill"'
tests_fuzz_replay_spill_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_spill_SOURCES = tests/fuzz/fuzz_spill.c tests/fuzz/replay_main.c
tests_fuzz_replay_spill_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_authz_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/authz"'
tests_fuzz_replay_authz_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_authz_SOURCES = tests/fuzz/fuzz_authz.c tests/fuzz/replay_main.c
tests_fuzz_replay_authz_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_login_body_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/login_body"'
tests_fuzz_replay_login_body_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_login_body_SOURCES = tests/fuzz/fuzz_login_body.c tests/fuzz/replay_main.c
tests_fuzz_replay_login_body_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_token_body_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/token_body"'
tests_fuzz_replay_token_body_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_token_body_SOURCES = tests/fuzz/fuzz_token_body.c tests/fuzz/replay_main.c
tests_fuzz_replay_token_body_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_proxy_path_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/proxy_path"'
tests_fuzz_replay_proxy_path_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_proxy_path_SOURCES = tests/fuzz/fuzz_proxy_path.c tests/fuzz/replay_main.c
tests_fuzz_replay_proxy_path_LDADD = $(TG_FUZZ_LDADD) $(H2O_LIBS)

tests_fuzz_replay_token_list_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/token_list"'
tests_fuzz_replay_token_list_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_token_list_SOURCES = tests/fuzz/fuzz_token_list.c tests/fuzz/replay_main.c
tests_fuzz_replay_token_list_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_forwarded_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/forwarded"'
tests_fuzz_replay_forwarded_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_forwarded_SOURCES = tests/fuzz/fuzz_forwarded.c tests/fuzz/replay_main.c
tests_fuzz_replay_forwarded_LDADD = $(TG_FUZZ_LDADD)

tests_fuzz_replay_proxy_protocol_CPPFLAGS = $(AM_CPPFLAGS) -DTG_FUZZ_CORPUS='"$(TG_FUZZ_CORPUS_DIR)/proxy_protocol"'
tests_fuzz_replay_proxy_protocol_CFLAGS = $(TG_FUZZ_CFLAGS)
tests_fuzz_replay_proxy_protocol_SOURCES = tests/fuzz/fuzz_proxy_protocol.c tests/fuzz/replay_main.c
tests_fuzz_replay_proxy_protocol_LDADD = $(TG_FUZZ_LDADD)

endif
