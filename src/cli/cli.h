/* cli.h: the subcommands of the facerec binary. Each returns the process exit status:
 * 0 success, 1 failure (message already printed on stderr), 2 usage error. */
#ifndef FR_CLI_H
#define FR_CLI_H

int cli_nn(int argc, char **argv);    /* facerec nn info|run ... */
int cli_bench(int argc, char **argv); /* facerec bench nn ... */

/* Prints "facerec: <msg>" on stderr; returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
