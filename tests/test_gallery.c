/* test_gallery: people, names, caps, search against a plain double-precision reference (also from
 * several threads), the file format against damage of every kind, and files on disk.
 * Prints search times at 1,000 / 10,000 / 100,000 examples (median of many queries, one thread;
 * measured, never asserted). `test_gallery --bench` measures with more queries. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util/text.h"
#include "vision/gallery.h"

#define D GALLERY_DIM
#define ROW (D * sizeof(float))

static uint64_t rng = 12345;

static uint32_t rnd32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rnd(void) /* -1..1 */
{
    return (float)(rnd32() % 20001) / 10000.0f - 1.0f;
}

static void normalise(float *v)
{
    double n = 0;
    for (int i = 0; i < D; i++)
        n += (double)v[i] * v[i];
    for (int i = 0; i < D; i++)
        v[i] = (float)(v[i] / sqrt(n));
}

static void unit(float *v)
{
    for (int i = 0; i < D; i++)
        v[i] = rnd();
    normalise(v);
}

/* A unit vector near base: another photo of the same face. */
static void near(float *v, const float *base, float noise)
{
    for (int i = 0; i < D; i++)
        v[i] = base[i] + noise * rnd();
    normalise(v);
}

static double dot(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < D; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* The file format's CRC, bit by bit: an independent reference, and a way to forge files whose
 * checksum is right but whose contents are not (a buggy or hostile writer). */
static uint32_t ref_crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

static void fix_crc(uint8_t *p, size_t len)
{
    put32(p + len - 4, ref_crc32(p, len - 4));
}

/* Serialises g into a new malloc'd copy (*len bytes). */
static uint8_t *file_of(const struct gallery *g, size_t *len)
{
    struct buf b;
    buf_init(&b, GALLERY_FILE_MAX);
    int rc = gallery_serialize(g, &b);
    CHECK(rc == 0);
    uint8_t *copy = malloc(b.len ? b.len : 1);
    memcpy(copy, b.data, b.len);
    *len = b.len;
    buf_free(&b);
    return copy;
}

/* Parses data and expects code; a success must serialise back to the same bytes. */
static int parse_rc(const uint8_t *data, size_t len, char err[FR_ERR_LEN])
{
    struct gallery *h = (struct gallery *)1;
    int rc = gallery_parse(data, len, &h, err);
    if (rc) {
        CHECK(h == NULL);
        return rc;
    }
    size_t n;
    uint8_t *again = file_of(h, &n);
    CHECK_MSG(n == len && !memcmp(again, data, len), "parsed, but serialises differently");
    free(again);
    gallery_free(h);
    return 0;
}

/* h after a checked parse or load; an empty gallery when that failed, so that the checks after
 * it fail rather than crash. */
static struct gallery *or_empty(struct gallery *h)
{
    if (!h && gallery_new(&h)) abort();
    return h;
}

/* 1 when top[i] of n found is name (a failed search leaves no names to read). */
static int top_is(const struct gallery_match *top, int n, int i, const char *name)
{
    return i < n && top[i].name && !strcmp(top[i].name, name);
}

static void test_basic(void)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float a[D], b[D], c[D], stranger[D], q[D];
    unit(a), unit(b), near(c, a, 0.3f), unit(stranger);
    struct gallery_match m, top[GALLERY_TOP_MAX];
    gallery_search(g, a, &m);
    CHECK(m.name == NULL && m.similarity == -1.0f);
    CHECK(gallery_search_top(g, a, -1.0f, top, 3) == 0);
    CHECK(gallery_people(g) == 0 && gallery_examples(g) == 0 && !gallery_person(g, 0, NULL));
    CHECK(gallery_remove(g, "Nobody") == FR_ENOTFOUND);

    CHECK(gallery_add(g, "Ada Lovelace", a, err) == 0);
    CHECK(gallery_add(g, "Grace Hopper", b, err) == 0);
    CHECK(gallery_add(g, "Ada Lovelace", c, err) == 0); /* same name: another example */
    CHECK(gallery_add(g, "ada lovelace", b, err) == 0); /* names are case-sensitive */
    CHECK(gallery_people(g) == 3 && gallery_examples(g) == 4);
    int ex = 0;
    CHECK(!strcmp(gallery_person(g, 0, &ex), "Ada Lovelace") && ex == 2);
    CHECK(!strcmp(gallery_person(g, 1, &ex), "Grace Hopper") && ex == 1);
    CHECK(!strcmp(gallery_person(g, 2, NULL), "ada lovelace"));
    CHECK(!gallery_person(g, 3, &ex) && !gallery_person(g, -1, &ex));
    CHECK(gallery_examples_of(g, "Ada Lovelace") == 2 && gallery_examples_of(g, "Nobody") == 0);

    gallery_search(g, a, &m);
    CHECK(m.name && !strcmp(m.name, "Ada Lovelace") && fabsf(m.similarity - 1.0f) < 1e-5f);
    near(q, c, 0.05f); /* nearer Ada's second example than her first: her best counts */
    gallery_search(g, q, &m);
    CHECK(m.name && !strcmp(m.name, "Ada Lovelace") && fabs(m.similarity - dot(q, c)) < 1e-5);

    /* top-k: distinct people, best first, the threshold drops the rest */
    int n = gallery_search_top(g, q, -1.0f, top, 5);
    CHECK(n == 3 && top_is(top, n, 0, "Ada Lovelace"));
    CHECK(n == 3 && top[0].similarity >= top[1].similarity &&
          top[1].similarity >= top[2].similarity);
    CHECK(n == 3 && !top_is(top, n, 1, "Ada Lovelace") && !top_is(top, n, 2, "Ada Lovelace") &&
          top[1].name != top[2].name);
    n = gallery_search_top(g, q, 0.9f, top, 5);
    CHECK(n == 1 && top_is(top, n, 0, "Ada Lovelace"));
    n = gallery_search_top(g, b, 0.99f, top, 5); /* Grace and "ada lovelace" tie at 1 */
    CHECK(n == 2 && top_is(top, n, 0, "Grace Hopper") && top_is(top, n, 1, "ada lovelace"));
    CHECK(gallery_search_top(g, q, -1.0f, top, 0) == FR_EINVAL);
    CHECK(gallery_search_top(g, q, -1.0f, top, GALLERY_TOP_MAX + 1) == FR_EINVAL);
    /* at the threshold is a match; just above it is not */
    gallery_search(g, q, &m);
    n = gallery_search_top(g, q, m.similarity, top, 1);
    CHECK(n == 1 && top_is(top, n, 0, "Ada Lovelace") && top[0].similarity == m.similarity);
    CHECK(gallery_search_top(g, q, nextafterf(m.similarity, 2.0f), top, 1) == 0);

    /* a stranger: the nearest person is far, so with a threshold they are Unknown */
    gallery_search(g, stranger, &m);
    CHECK(m.name != NULL && m.similarity < 0.5f);
    CHECK(gallery_search_top(g, stranger, 0.5f, top, 1) == 0);
    CHECK(gallery_search_top(g, a, NAN, top, 1) == 0);
    float nan_q[D];
    for (int i = 0; i < D; i++)
        nan_q[i] = NAN;
    gallery_search(g, nan_q, &m);
    CHECK(m.name == NULL && m.similarity == -1.0f);

    /* removal keeps the others in order; a returning person comes last */
    CHECK(gallery_remove(g, "Ada Lovelace") == 0);
    CHECK(gallery_remove(g, "Ada Lovelace") == FR_ENOTFOUND);
    CHECK(gallery_people(g) == 2 && gallery_examples(g) == 2);
    CHECK(!strcmp(gallery_person(g, 0, NULL), "Grace Hopper"));
    CHECK(!strcmp(gallery_person(g, 1, NULL), "ada lovelace"));
    CHECK(gallery_examples_of(g, "Ada Lovelace") == 0 &&
          gallery_examples_of(g, "ada lovelace") == 1);
    gallery_search(g, a, &m);
    CHECK(m.name && strcmp(m.name, "Ada Lovelace") != 0);
    CHECK(gallery_search_top(g, a, 0.5f, top, 3) == 0);
    n = gallery_search_top(g, b, 0.99f, top, 3);
    CHECK(n == 2 && top_is(top, n, 0, "Grace Hopper") && top_is(top, n, 1, "ada lovelace"));
    CHECK(gallery_add(g, "Ada Lovelace", a, err) == 0);
    CHECK(!strcmp(gallery_person(g, 2, &ex), "Ada Lovelace") && ex == 1);
    gallery_search(g, a, &m);
    CHECK(m.name && !strcmp(m.name, "Ada Lovelace"));
    CHECK(gallery_remove(g, "Grace Hopper") == 0 && gallery_remove(g, "ada lovelace") == 0);
    CHECK(gallery_remove(g, "Ada Lovelace") == 0 && gallery_examples(g) == 0);
    gallery_search(g, a, &m);
    CHECK(m.name == NULL);
    gallery_free(g);
    gallery_free(NULL);
}

static void test_names(void)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float a[D];
    unit(a);
    static const char *bad[] = {"",
                                "a/b",
                                "/",
                                "..",
                                ".",
                                " lead",
                                "trail ",
                                "tab\tname",
                                "new\nline",
                                "del\x7f",
                                "c1\xc2\x85next",
                                "c1\xc2\x9f",
                                "back\\slash",
                                "\xff\xfe",
                                "\xc0\xaf",
                                "\xed\xa0\x80",
                                "\xe2\x82",
                                "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        CHECK_MSG(gallery_add(g, bad[i], a, err) == FR_EINVAL, "name %zu accepted", i);
        CHECK_MSG(strstr(err, "name"), "name %zu: message '%s'", i, err);
        CHECK(!gallery_name_valid(bad[i]));
    }
    CHECK(!gallery_name_valid(NULL) && gallery_add(g, NULL, a, err) == FR_EINVAL);
    static const char *good[] = {
        "José Ñúñez",           "李小龍",       "O'Brien",    "a.b", "...", "x",
        "Zoë \xf0\x9f\x98\x80", "\xc2\xa0nbsp", "Dr. Who (2)"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK_MSG(gallery_add(g, good[i], a, err) == 0, "name %zu refused: %s", i, err);
    char name[GALLERY_NAME_MAX + 2];
    memset(name, 'x', GALLERY_NAME_MAX);
    name[GALLERY_NAME_MAX] = 0;
    CHECK(gallery_add(g, name, a, err) == 0); /* 128 bytes */
    name[GALLERY_NAME_MAX] = 'x', name[GALLERY_NAME_MAX + 1] = 0;
    CHECK(gallery_add(g, name, a, err) == FR_EINVAL); /* 129 */
    for (int i = 0; i < 42; i++) /* 126 bytes of three-byte characters, then two more bytes */
        memcpy(name + 3 * i, "\xe6\x9d\x8e", 3);
    memcpy(name + 126, "ab", 3);
    CHECK(gallery_add(g, name, a, err) == 0);
    memcpy(name + 126, "abc", 4);
    CHECK(gallery_add(g, name, a, err) == FR_EINVAL);
    CHECK(gallery_people(g) == (int)(sizeof good / sizeof *good) + 2);
    gallery_free(g);
}

static void test_embeddings(void)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float v[D] = {0};
    CHECK(gallery_add(g, "Zero", v, err) == FR_EINVAL && strstr(err, "unit length"));
    unit(v);
    v[7] = NAN;
    CHECK(gallery_add(g, "NaN", v, err) == FR_EINVAL && strstr(err, "finite"));
    v[7] = INFINITY;
    CHECK(gallery_add(g, "Inf", v, err) == FR_EINVAL);
    unit(v);
    for (int i = 0; i < D; i++)
        v[i] *= 1.01f; /* squared norm 1.02 */
    CHECK(gallery_add(g, "Long", v, err) == FR_EINVAL);
    unit(v);
    for (int i = 0; i < D; i++)
        v[i] *= 1.0002f; /* squared norm 1.0004: rounding, accepted */
    CHECK(gallery_add(g, "Rounded", v, err) == 0);
    CHECK(gallery_people(g) == 1 && gallery_examples(g) == 1);
    gallery_free(g);
}

/* A gallery with a copy of every example, to check search against. */
struct model {
    struct gallery *g;
    float *emb;
    int *owner;
    int n, npeople;
};

static void model_build(struct model *m, int npeople, int max_examples)
{
    char err[FR_ERR_LEN];
    CHECK(gallery_new(&m->g) == 0);
    m->emb = malloc((size_t)npeople * max_examples * ROW);
    m->owner = malloc((size_t)npeople * max_examples * sizeof *m->owner);
    m->n = 0, m->npeople = npeople;
    float *base = malloc((size_t)npeople * ROW);
    for (int p = 0; p < npeople; p++)
        unit(base + (size_t)p * D);
    /* examples interleaved across people, as enrolment over time would leave them */
    int *left = malloc((size_t)npeople * sizeof *left);
    int total = 0;
    for (int p = 0; p < npeople; p++)
        total += left[p] = 1 + (int)(rnd32() % (uint32_t)max_examples);
    while (total) {
        int p = (int)(rnd32() % (uint32_t)npeople);
        if (!left[p]) continue;
        char name[32];
        snprintf(name, sizeof name, "person %d", p);
        float *e = m->emb + (size_t)m->n * D;
        near(e, base + (size_t)p * D, 0.4f);
        CHECK(gallery_add(m->g, name, e, err) == 0);
        m->owner[m->n++] = p;
        left[p]--, total--;
    }
    free(left);
    free(base);
}

static void model_free(struct model *m)
{
    gallery_free(m->g);
    free(m->emb);
    free(m->owner);
}

/* Each person's best similarity to q, in double precision. */
static void model_scores(const struct model *m, const float *q, double *best)
{
    for (int p = 0; p < m->npeople; p++)
        best[p] = -INFINITY;
    for (int r = 0; r < m->n; r++) {
        double s = dot(m->emb + (size_t)r * D, q);
        if (s > best[m->owner[r]]) best[m->owner[r]] = s;
    }
}

static int person_of(const char *name)
{
    return atoi(name + strlen("person "));
}

/* Search and top-k against the reference for queries near examples and for strangers. */
static void check_search(const struct model *m, int queries)
{
    double *best = malloc((size_t)m->npeople * sizeof *best);
    int wrong = 0;
    for (int i = 0; i < queries; i++) {
        float q[D];
        if (i % 3 == 2)
            unit(q);
        else
            near(q, m->emb + (size_t)(rnd32() % (uint32_t)m->n) * D, 0.2f);
        model_scores(m, q, best);
        int ref = 0;
        for (int p = 1; p < m->npeople; p++)
            if (best[p] > best[ref]) ref = p;
        struct gallery_match one, top[8];
        gallery_search(m->g, q, &one);
        if (!one.name || fabs(one.similarity - best[ref]) > 1e-5 ||
            (person_of(one.name) != ref && fabs(best[person_of(one.name)] - best[ref]) > 1e-5))
            wrong++;
        float threshold = i % 2 ? 0.3f : -1.0f;
        int k = 1 + i % 8, found = gallery_search_top(m->g, q, threshold, top, k);
        int above = 0;
        for (int p = 0; p < m->npeople; p++)
            above += best[p] >= threshold;
        if (found != (above < k ? above : k)) wrong++;
        for (int j = 0; j < found; j++) {
            int p = person_of(top[j].name), higher = 0;
            if (fabs(best[p] - top[j].similarity) > 1e-5) wrong++;
            if (j && top[j].similarity > top[j - 1].similarity) wrong++;
            for (int o = 0; o < j; o++)
                if (!strcmp(top[o].name, top[j].name)) wrong++;
            for (int o = 0; o < m->npeople; o++) /* people clearly better must all be listed */
                higher += best[o] > best[p] + 1e-5;
            if (higher > j) wrong++;
        }
    }
    CHECK_MSG(wrong == 0, "%d disagreements with the reference over %d people, %d examples", wrong,
              m->npeople, m->n);
    free(best);
}

static void test_search(void)
{
    /* sizes around the kernel's 256-row blocks, then many people */
    static const int people[] = {1, 2, 100, 128, 129, 256, 3000};
    for (size_t i = 0; i < sizeof people / sizeof *people; i++) {
        struct model m;
        model_build(&m, people[i], people[i] < 3000 ? 4 : 3);
        check_search(&m, people[i] < 3000 ? 60 : 200);
        model_free(&m);
    }
}

struct reader_arg {
    const struct model *m;
    const float *queries;
    const struct gallery_match *expect;
    int nq, wrong;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    for (int rep = 0; rep < 5; rep++)
        for (int i = 0; i < a->nq; i++) {
            struct gallery_match top[4];
            int n = gallery_search_top(a->m->g, a->queries + (size_t)i * D, -1.0f, top, 4);
            if (n != 4) a->wrong++;
            for (int j = 0; j < n && j < 4; j++)
                if (top[j].name != a->expect[i * 4 + j].name ||
                    top[j].similarity != a->expect[i * 4 + j].similarity)
                    a->wrong++;
        }
    size_t len;
    free(file_of(a->m->g, &len)); /* serialising reads too */
    return NULL;
}

static void test_threads(void)
{
    struct model m;
    model_build(&m, 500, 4);
    enum { NQ = 50, THREADS = 4 };
    float *queries = malloc(NQ * ROW);
    struct gallery_match *expect = malloc(NQ * 4 * sizeof *expect);
    for (int i = 0; i < NQ; i++) {
        unit(queries + (size_t)i * D);
        CHECK(gallery_search_top(m.g, queries + (size_t)i * D, -1.0f, expect + i * 4, 4) == 4);
    }
    pthread_t t[THREADS];
    struct reader_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct reader_arg){&m, queries, expect, NQ, 0};
        CHECK(pthread_create(&t[i], NULL, reader, &args[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(args[i].wrong == 0, "thread %d: %d results differ", i, args[i].wrong);
    }
    free(queries);
    free(expect);
    model_free(&m);
}

static void test_caps(void)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float v[D];
    unit(v);
    int rc = 0;
    for (int i = 0; i < GALLERY_MAX_PER_PERSON && !rc; i++)
        rc = gallery_add(g, "Many", v, err);
    CHECK(rc == 0 && gallery_examples_of(g, "Many") == GALLERY_MAX_PER_PERSON);
    CHECK(gallery_add(g, "Many", v, err) == FR_ETOOBIG && strstr(err, "Many"));
    CHECK(gallery_examples(g) == GALLERY_MAX_PER_PERSON);
    CHECK(gallery_add(g, "Another", v, err) == 0); /* the cap is per person */

    /* a file with 1001 examples of one person, checksummed right: refused */
    CHECK(gallery_remove(g, "Another") == 0);
    size_t len;
    uint8_t *file = file_of(g, &len), *big = malloc(len + ROW);
    memcpy(big, file, len - 4);
    memcpy(big + len - 4, file + len - 4 - ROW, ROW);    /* the last example once more */
    put32(big + 14, GALLERY_MAX_PER_PERSON + 1);         /* header: embeddings */
    put32(big + 18 + 2 + 4, GALLERY_MAX_PER_PERSON + 1); /* the record of "Many" */
    fix_crc(big, len + ROW);
    CHECK(parse_rc(big, len + ROW, err) == FR_EFORMAT && strstr(err, "count"));
    put32(big + 14, GALLERY_MAX_PER_PERSON), put32(big + 18 + 2 + 4, GALLERY_MAX_PER_PERSON);
    fix_crc(big, len + ROW); /* the counts say 1000 but there is one more: refused too */
    CHECK(parse_rc(big, len + ROW, err) == FR_EFORMAT);
    free(file), free(big);
    gallery_free(g);

    /* the whole-gallery cap: 1000 people of 1000 examples, then one more */
    CHECK(gallery_new(&g) == 0);
    rc = 0;
    for (int p = 0; p < GALLERY_MAX_EMBEDDINGS / GALLERY_MAX_PER_PERSON && !rc; p++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", p);
        for (int i = 0; i < GALLERY_MAX_PER_PERSON && !rc; i++)
            rc = gallery_add(g, name, v, err);
    }
    CHECK(rc == 0 && gallery_examples(g) == GALLERY_MAX_EMBEDDINGS);
    CHECK(gallery_add(g, "Newcomer", v, err) == FR_ETOOBIG && strstr(err, "full"));
    CHECK(gallery_people(g) == GALLERY_MAX_EMBEDDINGS / GALLERY_MAX_PER_PERSON);
    CHECK(gallery_remove(g, "p0") == 0 && gallery_add(g, "Newcomer", v, err) == 0);
    gallery_free(g);
}

/* A small gallery file: three people, interleaved examples. */
static uint8_t *small_file(size_t *len)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float v[D];
    static const char *who[] = {"Ada", "Grace", "Ada", "Élodie", "Grace"};
    for (int i = 0; i < 5; i++) {
        unit(v);
        CHECK(gallery_add(g, who[i], v, err) == 0);
    }
    uint8_t *f = file_of(g, len);
    gallery_free(g);
    return f;
}

static void test_roundtrip(void)
{
    char err[FR_ERR_LEN];
    struct model m;
    model_build(&m, 40, 5);
    struct buf b;
    buf_init(&b, GALLERY_FILE_MAX);
    CHECK(buf_append(&b, "xyz", 3) == 0); /* serialising appends; the file starts at 3 */
    CHECK(gallery_serialize(m.g, &b) == 0);
    struct gallery *h;
    CHECK(gallery_parse((const uint8_t *)b.data + 3, b.len - 3, &h, err) == 0);
    h = or_empty(h);
    CHECK(gallery_people(h) == gallery_people(m.g) && gallery_examples(h) == gallery_examples(m.g));
    for (int p = 0; p < gallery_people(h); p++) {
        int e1 = 0, e2 = 0;
        CHECK(!strcmp(gallery_person(h, p, &e1), gallery_person(m.g, p, &e2)) && e1 == e2);
    }
    for (int r = 0; r < m.n; r++) { /* every example is there, under its person's name */
        struct gallery_match x;
        gallery_search(h, m.emb + (size_t)r * D, &x);
        CHECK(x.name && person_of(x.name) == m.owner[r] && fabsf(x.similarity - 1.0f) < 1e-5f);
    }
    size_t len;
    uint8_t *again = file_of(h, &len);
    CHECK(len == b.len - 3 && !memcmp(again, b.data + 3, len));
    free(again);
    gallery_free(h);
    buf_free(&b);

    /* the empty gallery */
    struct gallery *e;
    CHECK(gallery_new(&e) == 0);
    uint8_t *f = file_of(e, &len);
    CHECK(len == 22 && parse_rc(f, len, err) == 0);
    free(f);
    /* a buffer too small for the file */
    buf_init(&b, 100);
    CHECK(gallery_serialize(m.g, &b) == FR_ETOOBIG && b.err == FR_ETOOBIG && b.len == 0);
    CHECK(gallery_serialize(e, &b) == FR_ETOOBIG); /* the first failure sticks */
    buf_free(&b);
    gallery_free(e);
    model_free(&m);

    /* a file written by hand, byte by byte, as the format describes */
    uint8_t hand[18 + 2 + 3 + 4 + ROW + 4];
    memcpy(hand,
           "FRGAL\x1a"        /* magic */
           "\x01\x00"         /* version 1 */
           "\xc0\x00"         /* dim 192 */
           "\x01\x00\x00\x00" /* 1 person */
           "\x01\x00\x00\x00" /* 1 embedding */
           "\x03\x00"
           "Bob"
           "\x01\x00\x00\x00",
           27);
    float v[D] = {0};
    v[5] = 1.0f;
    memcpy(hand + 27, v, ROW);
    put32(hand + 27 + ROW, ref_crc32(hand, 27 + ROW));
    CHECK(gallery_parse(hand, sizeof hand, &h, err) == 0);
    h = or_empty(h);
    struct gallery_match x;
    gallery_search(h, v, &x);
    CHECK(x.name && !strcmp(x.name, "Bob") && x.similarity == 1.0f);
    gallery_free(h);
    CHECK(ref_crc32((const uint8_t *)"123456789", 9) == 0xcbf43926u);
}

static void test_damage(void)
{
    char err[FR_ERR_LEN];
    size_t len;
    uint8_t *f = small_file(&len), *copy = malloc(len + 1);
    CHECK(parse_rc(f, len, err) == 0);

    /* every truncation says so */
    int wrong = 0;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = parse_rc(f, cut, err);
        if (rc != FR_EFORMAT || (cut >= 6 && !strstr(err, "truncated"))) {
            if (!wrong) fprintf(stderr, "cut at %zu: %d %s\n", cut, rc, err);
            wrong++;
        }
    }
    CHECK_MSG(wrong == 0, "%d truncations not reported as truncated", wrong);

    /* every single-bit flip is an error: the version's own bytes say unsupported, others are
     * damage or, in a length field, a file that no longer adds up */
    int parsed = 0, odd = 0, integrity = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, f, len);
            copy[i] ^= (uint8_t)(1u << bit);
            int rc = parse_rc(copy, len, err);
            if (rc == 0)
                parsed++;
            else if (i == 6 || i == 7)
                odd += rc != FR_EUNSUPPORTED;
            else if (i < 6)
                odd += rc != FR_EFORMAT;
            else
                odd += rc != FR_EINTEGRITY && rc != FR_EFORMAT;
            integrity += rc == FR_EINTEGRITY;
        }
    CHECK_MSG(parsed == 0 && odd == 0, "bit flips: %d parsed, %d unexpected codes", parsed, odd);
    CHECK(integrity > (int)(len * 8 * 9 / 10)); /* most say the checksum failed */

    /* bytes appended */
    memcpy(copy, f, len);
    copy[len] = 0;
    CHECK(parse_rc(copy, len + 1, err) == FR_EFORMAT && strstr(err, "after"));

    /* not ours */
    CHECK(parse_rc((const uint8_t *)"hello world, not a gallery at all", 33, err) == FR_EFORMAT &&
          strstr(err, "not a facerec gallery"));
    CHECK(parse_rc((const uint8_t *)"", 0, err) == FR_EFORMAT);

    /* other versions: named, whatever the checksum */
    static const uint16_t versions[] = {0, 2, 0xffff};
    for (int i = 0; i < 3; i++) {
        memcpy(copy, f, len);
        copy[6] = (uint8_t)versions[i], copy[7] = (uint8_t)(versions[i] >> 8);
        char want[32];
        snprintf(want, sizeof want, "version %u", versions[i]);
        CHECK(parse_rc(copy, len, err) == FR_EUNSUPPORTED && strstr(err, want));
        fix_crc(copy, len);
        CHECK(parse_rc(copy, len, err) == FR_EUNSUPPORTED && strstr(err, want));
    }

    /* forged: checksum right, contents wrong */
    struct {
        size_t at;
        uint32_t value;
        int bytes, rc;
    } forged[] = {
        {8, 128, 2, FR_EUNSUPPORTED},     /* dim */
        {10, 4, 4, FR_EFORMAT},           /* one person more than there are */
        {10, 2, 4, FR_EFORMAT},           /* one fewer */
        {10, 0xffffffffu, 4, FR_EFORMAT}, /* absurd */
        {14, 6, 4, FR_EFORMAT},           /* one example more */
        {14, 4, 4, FR_EFORMAT},           /* one fewer */
        {14, 2000000, 4, FR_EFORMAT},     /* past the cap */
        {18, 0, 2, FR_EFORMAT},           /* empty name */
        {18, 129, 2, FR_EFORMAT},         /* long name */
        {18, 0xffff, 2, FR_EFORMAT},      /* past the end */
        {20, '/', 1, FR_EFORMAT},         /* "/da" */
        {21, 0, 1, FR_EFORMAT},           /* "A\0a" */
        {20, ' ', 1, FR_EFORMAT},         /* " da" */
        {23, 0, 4, FR_EFORMAT},           /* no examples */
        {23, 3, 4, FR_EFORMAT},           /* more examples than the record has */
        {23, 0xffffffffu, 4, FR_EFORMAT}, /* absurd */
        {27, 0x7fc00000u, 4, FR_EFORMAT}, /* NaN */
        {27, 0x7f800000u, 4, FR_EFORMAT}, /* infinity */
        {27, 0x40000000u, 4, FR_EFORMAT}, /* 2.0: not unit length */
    };
    for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
        memcpy(copy, f, len);
        for (int k = 0; k < forged[i].bytes; k++)
            copy[forged[i].at + (size_t)k] = (uint8_t)(forged[i].value >> (8 * k));
        fix_crc(copy, len);
        int rc = parse_rc(copy, len, err);
        CHECK_MSG(rc == forged[i].rc, "forgery %zu: %d (%s)", i, rc, err);
    }
    /* the second person renamed to the first: a name twice */
    memcpy(copy, f, len);
    size_t second = 18 + 2 + 3 + 4 + 2 * ROW;
    CHECK(copy[second] == 5 && !memcmp(copy + second + 2, "Grace", 5));
    copy[second] = 3;
    memmove(copy + second + 2 + 3, copy + second + 2 + 5, len - (second + 2 + 5));
    memcpy(copy + second + 2, "Ada", 3);
    fix_crc(copy, len - 2);
    CHECK(parse_rc(copy, len - 2, err) == FR_EFORMAT && strstr(err, "twice"));

    /* random damage behind a right checksum: an error, or a gallery that is exactly the bytes */
    int ok = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(copy, f, len);
        for (int k = 1 + (int)(rnd32() % 4); k > 0; k--) {
            size_t at = rnd32() % (i % 2 ? 40 : (uint32_t)len - 4); /* half in the header */
            copy[at] = (uint8_t)(rnd32() % 5 == 0 ? rnd32() : copy[at] ^ (1u << (rnd32() % 8)));
        }
        size_t l = i % 7 == 0 ? len - 4 - rnd32() % 64 : len;
        fix_crc(copy, l);
        ok += parse_rc(copy, l, err) == 0;
    }
    printf("forged damage: %d of 20000 parsed (each identical to its bytes)\n", ok);

    /* a length over the cap is refused before a byte is read */
    size_t huge = GALLERY_FILE_MAX + 1;
    void *map = mmap(NULL, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map != MAP_FAILED) {
        CHECK(parse_rc(map, huge, err) == FR_ETOOBIG);
        munmap(map, huge);
    }
    free(copy);
    free(f);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_files(void)
{
    char err[FR_ERR_LEN];
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512], path[600], other[600];
    snprintf(dir, sizeof dir, "%s/test_gallery.XXXXXX", tmpdir);
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp in %s failed", tmpdir);
        return;
    }
    snprintf(path, sizeof path, "%s/people.gal", dir);
    struct gallery *h;
    CHECK(gallery_load(path, &h, err) == FR_ENOTFOUND && h == NULL && strstr(err, path));

    struct model m;
    model_build(&m, 30, 3);
    CHECK(gallery_save(m.g, path, err) == 0);
    CHECK(gallery_load(path, &h, err) == 0);
    h = or_empty(h);
    size_t l1, l2;
    uint8_t *f1 = file_of(m.g, &l1), *f2 = file_of(h, &l2);
    CHECK(l1 == l2 && !memcmp(f1, f2, l1));
    free(f2);
    gallery_free(h);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == l1);

    /* saving over it replaces it and leaves no temp file behind */
    char e2[FR_ERR_LEN];
    float v[D];
    unit(v);
    CHECK(gallery_add(m.g, "Newcomer", v, e2) == 0);
    CHECK(gallery_save(m.g, path, err) == 0);
    CHECK(gallery_load(path, &h, err) == 0);
    h = or_empty(h);
    CHECK(h && gallery_examples_of(h, "Newcomer") == 1);
    gallery_free(h);
    CHECK(entries(dir) == 1);

    /* damaged on disk */
    FILE *fp = fopen(path, "r+b");
    CHECK(fp != NULL);
    if (fp) {
        fseek(fp, 100, SEEK_SET);
        int c = fgetc(fp);
        fseek(fp, 100, SEEK_SET);
        fputc(c ^ 0x55, fp);
        fclose(fp);
    }
    CHECK(gallery_load(path, &h, err) == FR_EINTEGRITY && strstr(err, path) && h == NULL);
    CHECK(truncate(path, 1000) == 0);
    CHECK(gallery_load(path, &h, err) == FR_EFORMAT && strstr(err, "truncated"));
    CHECK(truncate(path, 0) == 0);
    CHECK(gallery_load(path, &h, err) == FR_EFORMAT);
    /* over the cap (a sparse file: no disk used) */
    CHECK(truncate(path, (off_t)GALLERY_FILE_MAX + 1) == 0);
    CHECK(gallery_load(path, &h, err) == FR_ETOOBIG && h == NULL);
    CHECK(unlink(path) == 0);

    /* not a file; a directory that does not exist; a path too long */
    CHECK(gallery_load(dir, &h, err) == FR_EIO && h == NULL);
    snprintf(other, sizeof other, "%s/missing/people.gal", dir);
    CHECK(gallery_save(m.g, other, err) == FR_EIO);
    CHECK(entries(dir) == 0);
    char *longpath = malloc(5000);
    memset(longpath, 'a', 4999);
    longpath[4999] = 0;
    CHECK(gallery_save(m.g, longpath, err) == FR_EINVAL);
    free(longpath);
    /* a relative path: the directory to fsync is "." */
    char cwd[512];
    if (getcwd(cwd, sizeof cwd) && chdir(dir) == 0) {
        CHECK(gallery_save(m.g, "relative.gal", err) == 0);
        CHECK(gallery_load("relative.gal", &h, err) == 0);
        h = or_empty(h);
        gallery_free(h);
        CHECK(unlink("relative.gal") == 0 && chdir(cwd) == 0);
    }
    CHECK(rmdir(dir) == 0);
    free(f1);
    model_free(&m);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median search time at 1k, 10k and 100k examples (2,000 people of up to 50 examples at 100k),
 * and what serialising and parsing 100k cost. Printed, never asserted. */
static void bench(int queries)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float *q = malloc(64 * ROW);
    for (int i = 0; i < 64; i++)
        unit(q + (size_t)i * D);
    double *t = malloc((size_t)queries * sizeof *t);
    static const size_t sizes[] = {1000, 10000, 100000};
    size_t added = 0;
    float v[D];
    for (int s = 0; s < 3; s++) {
        for (; added < sizes[s]; added++) {
            char name[32];
            snprintf(name, sizeof name, "person %zu", added / 50);
            unit(v);
            if (gallery_add(g, name, v, err)) break;
        }
        struct gallery_match m, top[5];
        double t5 = 0;
        for (int i = 0; i < queries; i++) {
            double t0 = now_ms();
            gallery_search(g, q + (size_t)(i % 64) * D, &m);
            t[i] = now_ms() - t0;
        }
        for (int i = 0; i < 16; i++) {
            double t0 = now_ms();
            if (gallery_search_top(g, q + (size_t)i * D, 0.2f, top, 5) < 0) break;
            t5 += (now_ms() - t0) / 16;
        }
        qsort(t, (size_t)queries, sizeof *t, cmp_double);
        printf("search over %zu examples (%d people): median %.4f ms, p90 %.4f ms of %d queries; "
               "top-5 mean %.4f ms\n",
               gallery_examples(g), gallery_people(g), t[queries / 2], t[queries * 9 / 10], queries,
               t5);
    }
    CHECK(gallery_examples(g) == 100000);
    struct buf b;
    buf_init(&b, GALLERY_FILE_MAX);
    double t0 = now_ms();
    CHECK(gallery_serialize(g, &b) == 0);
    double t1 = now_ms();
    struct gallery *h = NULL;
    CHECK(gallery_parse((const uint8_t *)b.data, b.len, &h, err) == 0);
    h = or_empty(h);
    printf("100,000 examples: %.1f MB, serialise %.0f ms, parse %.0f ms\n", b.len / 1e6, t1 - t0,
           now_ms() - t1);
    gallery_free(h);
    buf_free(&b);
    free(t);
    free(q);
    gallery_free(g);
}

int main(int argc, char **argv)
{
    int full = argc > 1 && !strcmp(argv[1], "--bench");
    test_basic();
    test_names();
    test_embeddings();
    test_search();
    test_threads();
    test_roundtrip();
    test_damage();
    test_files();
    test_caps();
    bench(full ? 1001 : 31);
    return check_done();
}
