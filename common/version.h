/*
 * The suite's version, for `--version` on every program: the package version of
 * configure.ac's AC_INIT (autoconf passes it as PACKAGE_VERSION). One home, so tollgated,
 * tollgate-collector, tollgatectl and the bench programs can never disagree.
 */
#ifndef TG_VERSION_H
#define TG_VERSION_H

#ifdef PACKAGE_VERSION
#define TG_VERSION PACKAGE_VERSION
#else
/* built outside configure (contrib/bench/build.mk passes no version) */
#define TG_VERSION "unknown"
#endif

/** The line `PROGRAM --version` prints: "PROGRAM VERSION\n". */
#define TG_VERSION_LINE(program) program " " TG_VERSION "\n"

#endif
