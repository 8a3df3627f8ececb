/* sigv4.h: AWS Signature Version 4 for one HTTP request (header authentication).
 *
 * The caller gives the parts of the request as they go on the wire; this module builds the
 * canonical request (path, query sorted by name, signed headers lower-cased and sorted), the
 * string to sign and the signature, and returns the Authorization header value. Hashes and HMACs
 * come from OpenSSL's libcrypto. */
#ifndef FR_UTIL_SIGV4_H
#define FR_UTIL_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "util/err.h"

#define SIGV4_MAX_HEADERS 16
#define SIGV4_AUTH_MAX 1024

struct sigv4_header {
    const char *name; /* any case; signed lower-cased */
    const char *value;
};

struct sigv4_request {
    const char *method;
    const char *path;  /* URI-encoded as sent, starting with '/' */
    const char *query; /* "a=1&b=2" as sent (already encoded), or "" */
    const struct sigv4_header *headers; /* must include host and x-amz-date */
    int nheaders;
    const char *payload_hash; /* hex sha256 of the body, or "UNSIGNED-PAYLOAD" */
};

struct sigv4_key {
    const char *access_key, *secret_key, *region, *service;
};

/* Hex SHA-256 of data into out (65 bytes). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* The x-amz-date value for t: "YYYYMMDDTHHMMSSZ" (17 bytes with NUL). */
void sigv4_amz_date(time_t t, char out[17]);

/* Writes the Authorization header value into auth. amz_date is the request's x-amz-date.
 * Returns 0 or FR_EINVAL (too many headers, overlong values). */
int sigv4_sign(const struct sigv4_request *r, const struct sigv4_key *k, const char *amz_date,
               char auth[SIGV4_AUTH_MAX]) FR_MUST_USE;

/* Appends s to out (capacity cap), percent-encoding every byte but A-Z a-z 0-9 - _ . ~ (and '/'
 * when keep_slash). Returns the new length, or -1 when it does not fit. */
int sigv4_uri_encode(const char *s, int keep_slash, char *out, size_t cap);

#endif
