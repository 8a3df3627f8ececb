/* store_s3.c: objects on S3 (or anything that speaks its REST protocol) over libcurl, signed
 * with Signature V4. Path-style addressing against AWS_ENDPOINT_URL (emulators, MinIO, ...);
 * virtual-host addressing against AWS itself. Transient failures (connection errors, 5xx, 429)
 * are retried three times with a growing pause. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/backend.h"
#include "util/buf.h"
#include "util/sigv4.h"
#include "util/text.h"

#define TRIES 3

struct s3 {
    CURL *curl;
    char endpoint[CONFIG_STR_MAX]; /* scheme://host[:port], no trailing slash; "" for AWS */
    char region[64], access[256], secret[256];
    char in[64], out[64];
};

struct response {
    CURL *curl;
    long status;
    struct buf body; /* a successful response's body, capped by the caller's maximum */
    struct buf error; /* an error response's body, cut at 1 KiB, for messages */
    char etag[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    struct response *r = userdata;
    long status = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300) {
        size_t room = r->error.max - r->error.len;
        buf_append(&r->error, p, size * n < room ? size * n : room);
        return size * n;
    }
    return buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    struct response *r = userdata;
    size_t len = size * n;
    if (len > 5 && !strncasecmp(p, "etag:", 5)) {
        const char *v = p + 5;
        while (*v == ' ' || *v == '"')
            v++;
        size_t k = 0;
        while (v + k < p + len && v[k] != '"' && v[k] != '\r' && v[k] != '\n' && k < sizeof r->etag - 1)
            k++;
        memcpy(r->etag, v, k);
        r->etag[k] = 0;
    }
    return len;
}

/* One signed request: method on bucket/key (key may be NULL for the bucket itself). */
static int request(struct s3 *s, const char *method, const char *bucket, const char *key,
                   const void *body, size_t body_len, size_t max_response, struct response *resp,
                   char *err)
{
    char host[CONFIG_STR_MAX], path[STORE_KEY_MAX * 3 + 128] = "", url[sizeof host + sizeof path + 16];
    const char *scheme = "https";
    if (s->endpoint[0]) { /* path style */
        const char *h = strstr(s->endpoint, "://");
        scheme = h && !strncmp(s->endpoint, "http://", 7) ? "http" : "https";
        snprintf(host, sizeof host, "%s", h ? h + 3 : s->endpoint);
        snprintf(path, sizeof path, "/%s%s", bucket, key ? "/" : "");
    } else { /* virtual host */
        snprintf(host, sizeof host, "%s.s3.%s.amazonaws.com", bucket, s->region);
        snprintf(path, sizeof path, "/");
    }
    if (key && sigv4_uri_encode(key, 0, path, sizeof path) < 0)
        return fr_fail(err, FR_EINVAL, "object key too long");
    snprintf(url, sizeof url, "%s://%s%s", scheme, host, path);
    char payload[65], date[17], auth[SIGV4_AUTH_MAX];
    sigv4_sha256_hex(body ? body : "", body_len, payload);
    int rc = FR_EBACKEND;
    for (int attempt = 0; attempt < TRIES; attempt++) {
        if (attempt) {
            struct timespec ts = {0, 200000000L * attempt};
            nanosleep(&ts, NULL);
        }
        sigv4_amz_date(time(NULL), date);
        struct sigv4_header hs[] = {{"host", host}, {"x-amz-date", date}, {"x-amz-content-sha256", payload}};
        struct sigv4_request sr = {method, path, "", hs, 3, payload};
        struct sigv4_key sk = {s->access, s->secret, s->region, "s3"};
        if (sigv4_sign(&sr, &sk, date, auth)) return fr_fail(err, FR_EINVAL, "cannot sign the request");
        char h_auth[SIGV4_AUTH_MAX + 32], h_date[64], h_sha[128];
        snprintf(h_auth, sizeof h_auth, "Authorization: %s", auth);
        snprintf(h_date, sizeof h_date, "x-amz-date: %s", date);
        snprintf(h_sha, sizeof h_sha, "x-amz-content-sha256: %s", payload);
        struct curl_slist *list = NULL;
        list = curl_slist_append(list, h_auth);
        list = curl_slist_append(list, h_date);
        list = curl_slist_append(list, h_sha);
        list = curl_slist_append(list, "Expect:");
        buf_free(&resp->body);
        buf_free(&resp->error);
        buf_init(&resp->body, max_response);
        buf_init(&resp->error, 1024);
        resp->etag[0] = 0;
        CURL *c = s->curl;
        resp->curl = c;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        if (!strcmp(method, "PUT")) {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        } else if (!strcmp(method, "HEAD")) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        }
        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(list);
        if (cc == CURLE_WRITE_ERROR && resp->body.err == FR_ETOOBIG)
            return fr_fail(err, FR_ETOOBIG, "object %s/%s is over %zu bytes", bucket, key ? key : "",
                           max_response);
        if (cc != CURLE_OK) {
            rc = fr_fail(err, FR_EBACKEND, "S3 %s %s: %s", method, url, curl_easy_strerror(cc));
            continue;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        if (resp->status >= 500 || resp->status == 429) {
            rc = fr_fail(err, FR_EBACKEND, "S3 %s %s: HTTP %ld", method, url, resp->status);
            continue;
        }
        return 0;
    }
    return rc;
}

static int status_error(const struct response *r, const char *what, const char *bucket,
                        const char *key, char *err)
{
    if (r->status == 404)
        return fr_fail(err, FR_ENOTFOUND, "no object %s/%s", bucket, key ? key : "");
    return fr_fail(err, FR_EBACKEND, "S3 %s %s/%s: HTTP %ld %.200s", what, bucket, key ? key : "",
                   r->status, r->error.data ? r->error.data : "");
}

static int s3_put(void *impl, const char *bucket, const char *key, const void *data, size_t len,
                  char *err)
{
    struct response r = {0};
    int rc = request(impl, "PUT", bucket, key, data, len, 1 << 16, &r, err);
    if (!rc && r.status != 200) rc = status_error(&r, "PUT", bucket, key, err);
    buf_free(&r.body);
    buf_free(&r.error);
    return rc;
}

static int s3_get(void *impl, const char *bucket, const char *key, size_t max, uint8_t **data,
                  size_t *len, char *err)
{
    struct response r = {0};
    int rc = request(impl, "GET", bucket, key, NULL, 0, max, &r, err);
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
    struct response r = {0};
    int rc = request(impl, "DELETE", bucket, key, NULL, 0, 1 << 16, &r, err);
    if (!rc && r.status != 204 && r.status != 200 && r.status != 404)
        rc = status_error(&r, "DELETE", bucket, key, err);
    buf_free(&r.body);
    buf_free(&r.error);
    return rc;
}

static int s3_version(void *impl, const char *bucket, const char *key, char ver[64], char *err)
{
    struct response r = {0};
    int rc = request(impl, "HEAD", bucket, key, NULL, 0, 1 << 16, &r, err);
    if (!rc && r.status != 200) rc = status_error(&r, "HEAD", bucket, key, err);
    if (!rc) snprintf(ver, 64, "%s", r.etag[0] ? r.etag : "?");
    buf_free(&r.body);
    buf_free(&r.error);
    return rc;
}

/* HEAD on each bucket; a missing bucket is created (CreateBucket). */
static int ensure_bucket(struct s3 *s, const char *bucket, int create, char *err)
{
    struct response r = {0};
    int rc = request(s, "HEAD", bucket, NULL, NULL, 0, 1 << 16, &r, err);
    if (!rc && r.status == 404 && create) {
        char body[256] = "";
        if (strcmp(s->region, "us-east-1") != 0)
            snprintf(body, sizeof body,
                     "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
                     "</CreateBucketConfiguration>", s->region);
        rc = request(s, "PUT", bucket, NULL, body, strlen(body), 1 << 16, &r, err);
        if (!rc && r.status != 200) rc = status_error(&r, "CreateBucket", bucket, NULL, err);
    } else if (!rc && r.status != 200) {
        rc = status_error(&r, "HEAD bucket", bucket, NULL, err);
    }
    buf_free(&r.body);
    buf_free(&r.error);
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

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init_once(void)
{
    curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static const struct store_ops s3_ops = {s3_put, s3_get, s3_del, s3_version, NULL, s3_check, s3_close};

int store_s3_open(const struct config *c, const struct store_ops **ops, void **impl,
                  char err[FR_ERR_LEN])
{
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ok) return fr_fail(err, FR_EBACKEND, "libcurl initialisation failed");
    if (!c->aws_access_key_id[0] || !c->aws_secret_access_key[0])
        return fr_fail(err, FR_EINVAL, "the aws backend needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    struct s3 *s = calloc(1, sizeof *s);
    if (!s || !(s->curl = curl_easy_init())) {
        free(s);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", c->aws_endpoint_url);
    size_t n = strlen(s->endpoint);
    while (n > 0 && s->endpoint[n - 1] == '/')
        s->endpoint[--n] = 0;
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
