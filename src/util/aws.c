#include "util/aws.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TRIES 3

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init_once(void)
{
    curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

int aws_global_init(char err[FR_ERR_LEN])
{
    pthread_once(&curl_once, curl_init_once);
    return curl_ok ? 0 : fr_fail(err, FR_EBACKEND, "libcurl initialisation failed");
}

int aws_endpoint_parse(const char *url, const char *default_host, struct aws_endpoint *e,
                       char err[FR_ERR_LEN])
{
    if (!url[0]) {
        snprintf(e->scheme, sizeof e->scheme, "https");
        snprintf(e->host, sizeof e->host, "%s", default_host);
        return 0;
    }
    const char *rest;
    if (!strncmp(url, "http://", 7)) snprintf(e->scheme, sizeof e->scheme, "http"), rest = url + 7;
    else if (!strncmp(url, "https://", 8)) snprintf(e->scheme, sizeof e->scheme, "https"), rest = url + 8;
    else return fr_fail(err, FR_EINVAL, "AWS_ENDPOINT_URL must start with http:// or https://");
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof e->host || (rest[n] && strcmp(rest + n, "/")))
        return fr_fail(err, FR_EINVAL, "AWS_ENDPOINT_URL must be scheme://host[:port]");
    memcpy(e->host, rest, n);
    e->host[n] = 0;
    return 0;
}

void aws_response_free(struct aws_response *r)
{
    buf_free(&r->body);
    buf_free(&r->error);
}

struct sink {
    CURL *curl;
    struct aws_response *r;
};

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    struct sink *s = userdata;
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300) { /* error bodies are kept short and never count against the cap */
        size_t room = s->r->error.max - s->r->error.len;
        buf_append(&s->r->error, p, size * n < room ? size * n : room);
        return size * n;
    }
    return buf_append(&s->r->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    struct sink *s = userdata;
    size_t len = size * n;
    if (len > 5 && !strncasecmp(p, "etag:", 5)) {
        const char *v = p + 5, *end = p + len;
        while (v < end && (*v == ' ' || *v == '"'))
            v++;
        size_t k = 0;
        while (v + k < end && v[k] != '"' && v[k] != '\r' && v[k] != '\n' && k < sizeof s->r->etag - 1)
            k++;
        memcpy(s->r->etag, v, k);
        s->r->etag[k] = 0;
    }
    return len;
}

int aws_call(CURL *curl, const struct aws_endpoint *e, const struct sigv4_key *key,
             const char *method, const char *path, const char *query,
             const struct sigv4_header *headers, int nheaders, const void *body, size_t body_len,
             size_t max, struct aws_response *r, char err[FR_ERR_LEN])
{
    if (nheaders + 3 > SIGV4_MAX_HEADERS) return fr_fail(err, FR_EINVAL, "too many headers");
    char url[2048], payload[65], date[17], auth[SIGV4_AUTH_MAX];
    int w = snprintf(url, sizeof url, "%s://%s%s%s%s", e->scheme, e->host, path,
                     query && *query ? "?" : "", query ? query : "");
    if (w < 0 || (size_t)w >= sizeof url) return fr_fail(err, FR_EINVAL, "request URL too long");
    sigv4_sha256_hex(body ? body : "", body_len, payload);
    int rc = FR_EBACKEND;
    for (int attempt = 0; attempt < TRIES; attempt++) {
        if (attempt) {
            struct timespec ts = {0, 250000000L * attempt};
            nanosleep(&ts, NULL);
        }
        sigv4_amz_date(time(NULL), date);
        struct sigv4_header hs[SIGV4_MAX_HEADERS] = {
            {"host", e->host}, {"x-amz-date", date}, {"x-amz-content-sha256", payload}};
        if (nheaders > 0) memcpy(hs + 3, headers, (size_t)nheaders * sizeof *headers);
        struct sigv4_request sr = {method, path, query ? query : "", hs, nheaders + 3, payload};
        if (sigv4_sign(&sr, key, date, auth)) return fr_fail(err, FR_EINVAL, "cannot sign the request");
        struct curl_slist *list = NULL;
        char line[SIGV4_AUTH_MAX + 64];
        snprintf(line, sizeof line, "Authorization: %s", auth);
        list = curl_slist_append(list, line);
        for (int i = 1; i < nheaders + 3; i++) { /* host: libcurl sends it */
            snprintf(line, sizeof line, "%s: %s", hs[i].name, hs[i].value);
            list = curl_slist_append(list, line);
        }
        list = curl_slist_append(list, "Expect:");
        aws_response_free(r);
        buf_init(&r->body, max);
        buf_init(&r->error, 1024);
        r->etag[0] = 0;
        r->status = 0;
        struct sink sink = {curl, r};
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &sink);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 40000L); /* above SQS's 20 s long poll */
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        if (attempt) curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L); /* not the failed one */
        if (!strcmp(method, "HEAD")) {
            curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        } else if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
            if (body) {
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            }
        }
        CURLcode cc = curl_easy_perform(curl);
        curl_slist_free_all(list);
        if (cc == CURLE_WRITE_ERROR && r->body.err == FR_ETOOBIG)
            return fr_fail(err, FR_ETOOBIG, "%s %s: response over %zu bytes", method, path, max);
        if (cc != CURLE_OK) {
            rc = fr_fail(err, FR_EBACKEND, "%s %s: %s", method, url, curl_easy_strerror(cc));
            continue;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->status >= 500 || r->status == 429) {
            rc = fr_fail(err, FR_EBACKEND, "%s %s: HTTP %ld", method, url, r->status);
            continue;
        }
        return 0;
    }
    return rc;
}
