/* cli_bench.c: `facerec bench nn`. */
#include <stdio.h>

#include "cli/cli.h"

int cli_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("bench: not yet");
}
