/*
 * cli.h - what the files of the mpcc tool share: tools/mpcc.c (compile,
 * run, inspect, explain, and main) and tools/mpcc_train.c (train, export).
 *
 * Every message a user sees is one line "mpcc: <message>" on stderr, with
 * exit status 1 for failures and 2 for usage errors, which add "(see mpcc
 * VERB --help)". mpcc_cli_fail and mpcc_cli_vusage print it; each file
 * wraps the latter with the usage texts of its own verbs.
 */
#ifndef MPCC_CLI_H
#define MPCC_CLI_H

#include <stdarg.h>
#include <stdbool.h>

/* "mpcc: MESSAGE" on stderr; returns 1. */
int mpcc_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "mpcc: MESSAGE (see mpcc VERB--help)" on stderr, verb "" or "run " etc.;
 * returns 2. */
int mpcc_cli_vusage(const char *verb, const char *fmt, va_list ap);
/* -h or --help. */
bool mpcc_cli_is_help(const char *a);
/* A monotonic clock in milliseconds. */
double mpcc_cli_now_ms(void);

/* The training verbs (tools/mpcc_train.c): argv holds what follows the
 * verb; the result is the exit status. */
extern const char *const mpcc_cli_usage_train;  /* `mpcc train --help` */
extern const char *const mpcc_cli_usage_export; /* `mpcc export --help` */
int mpcc_cli_train(int argc, char **argv);
int mpcc_cli_export(int argc, char **argv);

#endif
