/* job.h: how a job is named: its id, its queue message and its object keys.
 *
 *   job_id       a UUID (version 4, lower-case hex): 36 characters
 *   message body {job_id}_{filename}, also the input object's key in S3_IN_BUCKET
 *   output key   {job_id} in S3_OUT_BUCKET
 *
 * Filenames from clients are sanitised before they become keys or paths. */
#ifndef FR_SERVICE_JOB_H
#define FR_SERVICE_JOB_H

#include <stddef.h>

#include "util/err.h"

#define JOB_ID_LEN 36
#define JOB_FILENAME_MAX 100 /* bytes of a sanitised filename */

/* Writes a new random UUID v4 into id (JOB_ID_LEN + 1 bytes). Returns 0 or FR_EIO. */
int job_id_new(char id[JOB_ID_LEN + 1]) FR_MUST_USE;

/* 1 when s is a well-formed lower-case UUID (any version), else 0. */
int job_id_valid(const char *s);

/* Reduces a client filename to a safe one: the last path component only, no control
 * characters, no '/' or '\\', no leading dots, invalid UTF-8 replaced by '_', at most
 * JOB_FILENAME_MAX bytes (cut on a character boundary, keeping the extension when short);
 * "upload" when nothing is left. out has JOB_FILENAME_MAX + 1 bytes. */
void job_filename_sanitize(const char *in, char out[JOB_FILENAME_MAX + 1]);

/* Splits a queue message body "{job_id}_{filename}" into its parts; the filename must already be
 * sanitised (unchanged by job_filename_sanitize). Returns 0 or FR_EFORMAT. */
int job_parse_body(const char *body, char id[JOB_ID_LEN + 1], char filename[JOB_FILENAME_MAX + 1]) FR_MUST_USE;

#endif
