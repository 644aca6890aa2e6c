# contrib/chaos: the fault-injection suite (issue 7). The suite itself is a script
# (contrib/chaos, helpers in contrib/lib/chaos.sh); these are its programs:
#   contrib/chaos.d/chaos_feed     appends usage records stamped days in the past or future
#                                  to a running tollgated's ring (the "clock step" fault)
#   contrib/chaos.d/chaos_clients  one HTTP/1.1 client per token, one request in flight,
#                                  counting completed and unanswered requests (worker-kill-exact)
noinst_PROGRAMS += contrib/chaos.d/chaos_feed
contrib_chaos_d_chaos_feed_SOURCES = contrib/chaos.d/chaos_feed.c
contrib_chaos_d_chaos_feed_LDADD = shm/libtgshm.a common/libtgcommon.a -lrt $(LIBS)
noinst_PROGRAMS += contrib/chaos.d/chaos_clients
contrib_chaos_d_chaos_clients_SOURCES = contrib/chaos.d/chaos_clients.c
contrib_chaos_d_chaos_clients_LDADD = -lpthread $(LIBS)
EXTRA_DIST += contrib/chaos contrib/lib/chaos.sh
