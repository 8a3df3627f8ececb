#include "util/sigv4.h"

#include <ctype.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    hex(d, sizeof d, out);
}

void sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

int sigv4_uri_encode(const char *s, int keep_slash, char *out, size_t cap)
{
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
                    (keep_slash && *p == '/');
        if (n + (plain ? 1 : 3) >= cap) return -1;
        if (plain) out[n++] = (char)*p;
        else n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = 0;
    return (int)n;
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct sigv4_header *)a)->name, ((const struct sigv4_header *)b)->name);
}

/* Sorts "a=1&c=3&b=2" by parameter name (then value) into out. */
static int sort_query(const char *q, char *out, size_t cap)
{
    char copy[2048];
    if (strlen(q) >= sizeof copy) return FR_EINVAL;
    strcpy(copy, q);
    char *parts[64];
    int n = 0;
    for (char *tok = strtok(copy, "&"); tok && n < 64; tok = strtok(NULL, "&"))
        parts[n++] = tok;
    for (int i = 1; i < n; i++) /* insertion sort: a few parameters */
        for (int j = i; j > 0 && strcmp(parts[j - 1], parts[j]) > 0; j--) {
            char *t = parts[j];
            parts[j] = parts[j - 1];
            parts[j - 1] = t;
        }
    out[0] = 0;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%s%s%s", i ? "&" : "", parts[i],
                         strchr(parts[i], '=') ? "" : "=");
        if (w < 0 || (size_t)w >= cap - used) return FR_EINVAL;
        used += (size_t)w;
    }
    return 0;
}

int sigv4_sign(const struct sigv4_request *r, const struct sigv4_key *k, const char *amz_date,
               char auth[SIGV4_AUTH_MAX])
{
    if (r->nheaders > SIGV4_MAX_HEADERS) return FR_EINVAL;
    struct sigv4_header h[SIGV4_MAX_HEADERS];
    char names[SIGV4_MAX_HEADERS][64];
    for (int i = 0; i < r->nheaders; i++) {
        size_t n = strlen(r->headers[i].name);
        if (n >= sizeof names[i]) return FR_EINVAL;
        for (size_t j = 0; j <= n; j++)
            names[i][j] = (char)tolower((unsigned char)r->headers[i].name[j]);
        h[i].name = names[i];
        h[i].value = r->headers[i].value;
    }
    qsort(h, (size_t)r->nheaders, sizeof *h, by_name);
    char query[2048];
    if (sort_query(r->query ? r->query : "", query, sizeof query)) return FR_EINVAL;

    struct buf canon, signed_names;
    buf_init(&canon, 16384);
    buf_init(&signed_names, 2048);
    buf_printf(&canon, "%s\n%s\n%s\n", r->method, r->path, query);
    for (int i = 0; i < r->nheaders; i++) {
        /* trim the value and fold runs of spaces, as the canonical form wants */
        const char *v = h[i].value;
        while (*v == ' ')
            v++;
        buf_printf(&canon, "%s:", h[i].name);
        int space = 0;
        for (; *v; v++) {
            if (*v == ' ') {
                space = 1;
                continue;
            }
            if (space) buf_append(&canon, " ", 1);
            space = 0;
            buf_append(&canon, v, 1);
        }
        buf_append(&canon, "\n", 1);
        buf_printf(&signed_names, "%s%s", i ? ";" : "", h[i].name);
    }
    buf_printf(&canon, "\n%s\n%s", signed_names.data ? signed_names.data : "", r->payload_hash);
    int rc = canon.err || signed_names.err ? FR_EINVAL : 0;
    if (!rc) {
        char canon_hash[65], date[9], scope[256], to_sign[512], key[300];
        sigv4_sha256_hex(canon.data, canon.len, canon_hash);
        memcpy(date, amz_date, 8);
        date[8] = 0;
        snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, k->region, k->service);
        snprintf(to_sign, sizeof to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, canon_hash);
        unsigned char kd[32], kr[32], ks[32], kk[32], sig[32];
        snprintf(key, sizeof key, "AWS4%s", k->secret_key);
        hmac(key, strlen(key), date, kd);
        hmac(kd, 32, k->region, kr);
        hmac(kr, 32, k->service, ks);
        hmac(ks, 32, "aws4_request", kk);
        hmac(kk, 32, to_sign, sig);
        char sighex[65];
        hex(sig, 32, sighex);
        int w = snprintf(auth, SIGV4_AUTH_MAX,
                         "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                         k->access_key, scope, signed_names.data, sighex);
        if (w < 0 || w >= SIGV4_AUTH_MAX) rc = FR_EINVAL;
    }
    buf_free(&canon);
    buf_free(&signed_names);
    return rc;
}
