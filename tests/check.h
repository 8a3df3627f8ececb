/* check.h: the tiny assertion harness shared by the test programs.
 *
 * A test program calls CHECK() as often as it likes and ends main with `return check_done();`.
 * Exit status: 0 all passed, 1 some check failed, 77 skipped (check_skip). */
#ifndef FR_CHECK_H
#define FR_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_count, check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline int check_done(void)
{
    printf("%d checks, %d failed\n", check_count, check_failed);
    return check_failed ? 1 : 0;
}

/* The whole file at path (caller frees), its size in *len; NULL when it cannot be read. */
static inline void *check_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    void *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    rewind(f);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

/* Ends the program as skipped, saying why (e.g. "../shared/golden is absent"). */
static inline int check_skip(const char *why)
{
    printf("SKIP: %s\n", why);
    return 77;
}

#endif
