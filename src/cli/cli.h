/* cli.h: the subcommands of the facerec binary. Each returns the process exit status:
 * 0 success, 1 failure (message already printed on stderr), 2 usage error. */
#ifndef FR_CLI_H
#define FR_CLI_H

int cli_nn(int argc, char **argv);    /* facerec nn info|run ... */
int cli_bench(int argc, char **argv); /* facerec bench nn ... */
int cli_detect(int argc, char **argv); /* facerec detect|embed IMAGE... */
int cli_enroll(int argc, char **argv);   /* facerec enroll --gallery FILE DIR */
int cli_identify(int argc, char **argv); /* facerec identify --gallery FILE IMAGE... */
int cli_serve(int argc, char **argv);  /* facerec serve: API + worker pool */
int cli_api(int argc, char **argv);    /* facerec api */
int cli_worker(int argc, char **argv); /* facerec worker */
int cli_autoscale(int argc, char **argv); /* facerec autoscale */
int cli_queue(int argc, char **argv);  /* facerec queue send|counts */
int cli_loadtest(int argc, char **argv); /* facerec loadtest URL ... IMAGE... */

/* $FACEREC_MODELS or "models". */
const char *cli_models_dir(void);

/* Prints "facerec: <msg>" on stderr; returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A usage error: prints "facerec: CMD: <msg> (see 'facerec help CMD')" on stderr; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdio.h>
/* Prints the manual page of command cmd (NAME, SYNOPSIS, ... EXAMPLES) on f; returns 0, or -1
 * when cmd has none. */
int cli_manual(const char *cmd, FILE *f);

#endif
