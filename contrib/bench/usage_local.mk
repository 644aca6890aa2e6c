# contrib/bench: the usage endpoint's data generator and latency probe (issue 5).
#   contrib/bench/gen_usage      fills a database with N usage rows over D days via COPY BINARY
#                                (tenants, users and tokens made as needed; prints the hot token)
#   contrib/bench/usage_latency  p50/p99 of the first page, of page N via `page`, and of the
#                                same depth via `cursor`, over one kept-alive connection
# usage_latency needs libcurl, a test-only dependency, so it exists only with HAVE_TEST_DEPS.
noinst_PROGRAMS += contrib/bench/gen_usage
contrib_bench_gen_usage_CPPFLAGS = $(AM_CPPFLAGS)
contrib_bench_gen_usage_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS) $(OPENSSL_CFLAGS)
contrib_bench_gen_usage_SOURCES = contrib/bench/gen_usage.c
contrib_bench_gen_usage_LDADD = common/libtgcommon.a $(PQ_LIBS) $(OPENSSL_LIBS) $(ARGON2_LIBS) -lm $(LIBS)

if HAVE_TEST_DEPS
noinst_PROGRAMS += contrib/bench/usage_latency
contrib_bench_usage_latency_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS)
contrib_bench_usage_latency_SOURCES = contrib/bench/usage_latency.c
contrib_bench_usage_latency_LDADD = $(CURL_LIBS) $(JANSSON_LIBS) $(LIBS)
endif
