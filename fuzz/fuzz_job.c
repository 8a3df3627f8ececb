/* fuzz_job: client filenames and queue message bodies. A sanitised name is always a valid
 * store key, stable under a second sanitising, and accepted back by job_parse_body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/job.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char name[JOB_FILENAME_MAX + 1], again[JOB_FILENAME_MAX + 1];
    job_filename_sanitize(s, name);
    job_filename_sanitize(name, again);
    if (strcmp(name, again) != 0 || !store_key_valid(name) || strlen(name) > JOB_FILENAME_MAX) abort();
    char body[JOB_ID_LEN + JOB_FILENAME_MAX + 2], id[JOB_ID_LEN + 1], fn[JOB_FILENAME_MAX + 1];
    memcpy(body, "0123abcd-0000-4000-8000-00000000abcd_", JOB_ID_LEN + 1);
    strcpy(body + JOB_ID_LEN + 1, name);
    if (job_parse_body(body, id, fn) != 0 || strcmp(fn, name) != 0) abort();
    (void)job_parse_body(s, id, fn); /* arbitrary bodies: any answer, no crash */
    free(s);
    return 0;
}
