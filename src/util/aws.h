/* aws.h: one signed HTTP request to an AWS-protocol service (S3, SQS) over libcurl, with
 * retries of transient failures (connection errors, 5xx, 429: three tries, growing pauses).
 * The caller owns the CURL handle (one per thread) and the response buffers. */
#ifndef FR_UTIL_AWS_H
#define FR_UTIL_AWS_H

#include <curl/curl.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/sigv4.h"

struct aws_endpoint {
    char scheme[8];  /* "http" or "https" */
    char host[256];  /* host[:port] */
};

/* Splits "http://host:port" (no path) into e; an empty url gives https://default_host. */
int aws_endpoint_parse(const char *url, const char *default_host, struct aws_endpoint *e,
                       char err[FR_ERR_LEN]) FR_MUST_USE;

/* Initialises libcurl once per process (thread-safe). */
int aws_global_init(char err[FR_ERR_LEN]) FR_MUST_USE;

struct aws_response {
    long status;
    struct buf body;  /* a 2xx body, capped by the max given to aws_call */
    struct buf error; /* an error body, cut at 1 KiB */
    char etag[64];
};

void aws_response_free(struct aws_response *r);

/* Sends method path?query with the given extra headers (signed too) and body, signed for key.
 * Returns 0 with r->status set (any status: the caller decides), FR_ETOOBIG when a 2xx body is
 * over max, or FR_EBACKEND after the tries failed. */
int aws_call(CURL *curl, const struct aws_endpoint *e, const struct sigv4_key *key,
             const char *method, const char *path, const char *query,
             const struct sigv4_header *headers, int nheaders, const void *body, size_t body_len,
             size_t max, struct aws_response *r, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
