# contrib/chaos: the fault-injection suite (issue 7). The suite itself is a script
# (contrib/chaos, helpers in contrib/lib/chaos.sh); this is its one program:
#   contrib/chaos.d/chaos_feed   appends usage records stamped days in the past or future
#                                to a running tollgated's ring (the "clock step" fault)
noinst_PROGRAMS += contrib/chaos.d/chaos_feed
contrib_chaos_d_chaos_feed_SOURCES = contrib/chaos.d/chaos_feed.c
contrib_chaos_d_chaos_feed_LDADD = shm/libtgshm.a common/libtgcommon.a -lrt $(LIBS)
EXTRA_DIST += contrib/chaos contrib/lib/chaos.sh
