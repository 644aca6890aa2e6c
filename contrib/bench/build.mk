# Builds the harness's own programs without autotools, so contrib/bench/run works
# before (and independently of) the project's configure, with the project's own
# optimisation level and event-loop flag:
#   make -f contrib/bench/build.mk OUT=build-bench/bench
# (Named build.mk, not Makefile: the repository ignores files called Makefile.)
#   bare      the bare libh2o hello-world, the yardstick (bare/bare.c)
#   copy_raw  a raw COPY BINARY of usage rows into api_token_usage (copy_raw.c)
SRC := $(dir $(lastword $(MAKEFILE_LIST)))
OUT ?= .
CC ?= cc
CFLAGS ?= -O2 -g
BENCH_CFLAGS = -std=gnu11 -Wall -Wextra -Wno-unused-parameter -DH2O_USE_LIBUV=0 -I$(SRC)../.. \
	-DPACKAGE_VERSION=\"$$(sed -n 's/^AC_INIT(\[[^]]*\], \[\([^]]*\)\].*/\1/p' $(SRC)../../configure.ac)\"

all: $(OUT)/bare $(OUT)/copy_raw

$(OUT)/bare: $(SRC)bare/bare.c
	@mkdir -p $(OUT)
	$(CC) $(BENCH_CFLAGS) $(CFLAGS) $$(pkg-config --cflags libh2o-evloop) -o $@ $< \
	    $$(pkg-config --libs libh2o-evloop) -lssl -lcrypto

$(OUT)/copy_raw: $(SRC)copy_raw.c
	@mkdir -p $(OUT)
	$(CC) $(BENCH_CFLAGS) $(CFLAGS) $$(pkg-config --cflags libpq) -o $@ $< $$(pkg-config --libs libpq)

.PHONY: all
