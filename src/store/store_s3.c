/* store_s3.c: objects on S3 (or anything that speaks its REST protocol) over libcurl, signed
 * with Signature V4. Path-style addressing against AWS_ENDPOINT_URL (emulators, MinIO, ...);
 * virtual-host addressing against AWS itself. Transient failures (connection errors, 5xx, 429)
 * are retried three times with a growing pause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "util/aws.h"

struct s3 {
    CURL *curl;
    struct aws_endpoint ep;
    int path_style; /* with AWS_ENDPOINT_URL; virtual hosts on AWS itself */
    char region[64], access[256], secret[256];
    char in[64], out[64];
};

/* One signed request on bucket/key (key NULL: the bucket itself), with the extra header cond
 * when not NULL. */
static int request(struct s3 *s, const char *method, const char *bucket, const char *key,
                   const void *body, size_t body_len, size_t max,
                   const struct sigv4_header *cond, struct aws_response *r, char *err)
{
    struct aws_endpoint ep = s->ep;
    char path[STORE_KEY_MAX * 3 + 128] = "";
    if (s->path_style) {
        snprintf(path, sizeof path, "/%s%s", bucket, key ? "/" : "");
    } else {
        snprintf(ep.host, sizeof ep.host, "%s.s3.%s.amazonaws.com", bucket, s->region);
        snprintf(path, sizeof path, "/");
    }
    if (key && sigv4_uri_encode(key, 0, path, sizeof path) < 0)
        return fr_fail(err, FR_EINVAL, "object key too long");
    struct sigv4_key k = {s->access, s->secret, s->region, "s3"};
    /* bytes are bytes: without this libcurl would label a body as a form */
    struct sigv4_header hs[2];
    int n = 0;
    if (body) hs[n++] = (struct sigv4_header){"content-type", "application/octet-stream"};
    if (cond) hs[n++] = *cond;
    return aws_call(s->curl, &ep, &k, method, path, "", hs, n, body, body_len, max, r, err);
}

static int status_error(const struct aws_response *r, const char *what, const char *bucket,
                        const char *key, char *err)
{
    if (r->status == 404)
        return fr_fail(err, FR_ENOTFOUND, "no object %s/%s", bucket, key ? key : "");
    return fr_fail(err, FR_EBACKEND, "S3 %s %s/%s: HTTP %ld %.200s", what, bucket, key ? key : "",
                   r->status, r->error.data ? r->error.data : "");
}

static int s3_put(void *impl, const char *bucket, const char *key, const void *data, size_t len,
                  const char *if_ver, char *new_ver, char *err)
{
    /* a version is an ETag without its quotes (aws.c): If-Match wants them back */
    char tag[80];
    struct sigv4_header cond = {"if-none-match", "*"};
    if (if_ver && *if_ver) {
        snprintf(tag, sizeof tag, "\"%s\"", if_ver);
        cond = (struct sigv4_header){"if-match", tag};
    }
    struct aws_response r = {0};
    int rc = request(impl, "PUT", bucket, key, data, len, 1 << 16, if_ver ? &cond : NULL, &r, err);
    if (!rc && (r.status == 412 || r.status == 409) && if_ver)
        rc = fr_fail(err, FR_ECONFLICT, "%s/%s changed since it was read", bucket, key);
    else if (!rc && r.status != 200)
        rc = status_error(&r, "PUT", bucket, key, err);
    if (!rc && new_ver) snprintf(new_ver, 64, "%s", r.etag);
    aws_response_free(&r);
    return rc;
}

static int s3_get(void *impl, const char *bucket, const char *key, size_t max, uint8_t **data,
                  size_t *len, char *err)
{
    struct aws_response r = {0};
    int rc = request(impl, "GET", bucket, key, NULL, 0, max, NULL, &r, err);
    if (!rc && r.status != 200) rc = status_error(&r, "GET", bucket, key, err);
    buf_free(&r.error);
    if (rc) {
        buf_free(&r.body);
        return rc;
    }
    if (!r.body.data && buf_append(&r.body, "", 0) != 0) { /* an empty object: "" */
        buf_free(&r.body);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    *data = (uint8_t *)r.body.data;
    *len = r.body.len;
    return 0;
}

static int s3_del(void *impl, const char *bucket, const char *key, char *err)
{
    struct aws_response r = {0};
    int rc = request(impl, "DELETE", bucket, key, NULL, 0, 1 << 16, NULL, &r, err);
    if (!rc && r.status != 204 && r.status != 200 && r.status != 404)
        rc = status_error(&r, "DELETE", bucket, key, err);
    aws_response_free(&r);
    return rc;
}

static int s3_version(void *impl, const char *bucket, const char *key, char ver[64], char *err)
{
    struct aws_response r = {0};
    int rc = request(impl, "HEAD", bucket, key, NULL, 0, 1 << 16, NULL, &r, err);
    if (!rc && r.status != 200) rc = status_error(&r, "HEAD", bucket, key, err);
    if (!rc) snprintf(ver, 64, "%s", r.etag[0] ? r.etag : "?");
    aws_response_free(&r);
    return rc;
}

/* HEAD on each bucket; a missing bucket is created (CreateBucket). */
static int ensure_bucket(struct s3 *s, const char *bucket, int create, char *err)
{
    struct aws_response r = {0};
    int rc = request(s, "HEAD", bucket, NULL, NULL, 0, 1 << 16, NULL, &r, err);
    if (!rc && r.status == 404 && create) {
        char body[256] = "";
        if (strcmp(s->region, "us-east-1") != 0)
            snprintf(body, sizeof body,
                     "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
                     "</CreateBucketConfiguration>", s->region);
        rc = request(s, "PUT", bucket, NULL, body, strlen(body), 1 << 16, NULL, &r, err);
        if (!rc && r.status != 200) rc = status_error(&r, "CreateBucket", bucket, NULL, err);
    } else if (!rc && r.status != 200) {
        rc = status_error(&r, "HEAD bucket", bucket, NULL, err);
    }
    aws_response_free(&r);
    return rc;
}

static int s3_check(void *impl, char *err)
{
    struct s3 *s = impl;
    int rc = ensure_bucket(s, s->in, 0, err);
    return rc ? rc : ensure_bucket(s, s->out, 0, err);
}

static void s3_close(void *impl)
{
    struct s3 *s = impl;
    curl_easy_cleanup(s->curl);
    free(s);
}

static const struct store_ops s3_ops = {s3_put, s3_get, s3_del, s3_version, NULL,
                                        NULL,   NULL,   NULL,   s3_check,   s3_close};

int store_s3_open(const struct config *c, const struct store_ops **ops, void **impl,
                  char err[FR_ERR_LEN])
{
    if (aws_global_init(err)) return FR_EBACKEND;
    if (!c->aws_access_key_id[0] || !c->aws_secret_access_key[0])
        return fr_fail(err, FR_EINVAL, "the aws backend needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    struct s3 *s = calloc(1, sizeof *s);
    if (!s || !(s->curl = curl_easy_init())) {
        free(s);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    char host[128];
    snprintf(host, sizeof host, "s3.%s.amazonaws.com", c->aws_region);
    if (aws_endpoint_parse(c->aws_endpoint_url, host, &s->ep, err)) {
        s3_close(s);
        return FR_EINVAL;
    }
    s->path_style = c->aws_endpoint_url[0] != 0;
    snprintf(s->region, sizeof s->region, "%s", c->aws_region);
    snprintf(s->access, sizeof s->access, "%s", c->aws_access_key_id);
    snprintf(s->secret, sizeof s->secret, "%s", c->aws_secret_access_key);
    snprintf(s->in, sizeof s->in, "%s", c->s3_in_bucket);
    snprintf(s->out, sizeof s->out, "%s", c->s3_out_bucket);
    int rc = ensure_bucket(s, s->in, 1, err);
    if (!rc) rc = ensure_bucket(s, s->out, 1, err);
    if (rc) {
        s3_close(s);
        return rc;
    }
    *ops = &s3_ops;
    *impl = s;
    return 0;
}
