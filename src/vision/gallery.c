/* gallery.c: embeddings in one contiguous matrix, rows grouped by nothing but an owner index. */
#include "vision/gallery.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/text.h"

_Static_assert(GALLERY_DIM % 16 == 0, "search works in blocks of 16");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file format stores floats as is");

static const char MAGIC[6] = {'F', 'R', 'G', 'A', 'L', 0x1a};
#define VERSION 1

struct person {
    char name[GALLERY_NAME_MAX + 1];
    int examples;
};

struct gallery {
    struct person *people;
    int npeople, people_cap;
    float *emb;   /* n x GALLERY_DIM, 64-byte aligned */
    int *owner;   /* person index of each row */
    size_t n, cap;
};

int gallery_new(struct gallery **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : FR_ENOMEM;
}

void gallery_free(struct gallery *g)
{
    if (!g) return;
    free(g->people);
    free(g->emb);
    free(g->owner);
    free(g);
}

int gallery_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > GALLERY_NAME_MAX || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
    if (name[0] == ' ' || name[n - 1] == ' ') return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p;) {
        int len = utf8_len(p);
        if (!len || (len == 1 && (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\'))) return 0;
        p += len;
    }
    return 1;
}

static int find(const struct gallery *g, const char *name)
{
    for (int i = 0; i < g->npeople; i++)
        if (!strcmp(g->people[i].name, name)) return i;
    return -1;
}

static int reserve_rows(struct gallery *g, size_t rows)
{
    if (rows <= g->cap) return 0;
    size_t cap = g->cap ? g->cap * 2 : 64;
    while (cap < rows)
        cap *= 2;
    float *e = aligned_alloc(64, cap * GALLERY_DIM * sizeof(float));
    int *o = malloc(cap * sizeof(int));
    if (!e || !o) {
        free(e), free(o);
        return FR_ENOMEM;
    }
    if (g->n) {
        memcpy(e, g->emb, g->n * GALLERY_DIM * sizeof(float));
        memcpy(o, g->owner, g->n * sizeof(int));
    }
    free(g->emb), free(g->owner);
    g->emb = e, g->owner = o, g->cap = cap;
    return 0;
}

int gallery_add(struct gallery *g, const char *name, const float emb[GALLERY_DIM],
                char err[FR_ERR_LEN])
{
    if (!gallery_name_valid(name)) return fr_fail(err, FR_EINVAL, "invalid person name");
    double norm = 0;
    for (int i = 0; i < GALLERY_DIM; i++) {
        if (!isfinite(emb[i])) return fr_fail(err, FR_EINVAL, "embedding is not finite");
        norm += (double)emb[i] * emb[i];
    }
    if (fabs(norm - 1.0) > 1e-3) return fr_fail(err, FR_EINVAL, "embedding is not unit length");
    if (g->n >= GALLERY_MAX_EMBEDDINGS)
        return fr_fail(err, FR_ETOOBIG, "gallery is full (%d examples)", GALLERY_MAX_EMBEDDINGS);
    int p = find(g, name);
    if (p >= 0 && g->people[p].examples >= GALLERY_MAX_PER_PERSON)
        return fr_fail(err, FR_ETOOBIG, "%s has the most examples allowed (%d)", name,
                       GALLERY_MAX_PER_PERSON);
    if (reserve_rows(g, g->n + 1)) return fr_fail(err, FR_ENOMEM, "out of memory");
    if (p < 0) {
        if (g->npeople == g->people_cap) {
            int cap = g->people_cap ? g->people_cap * 2 : 16;
            struct person *np = realloc(g->people, (size_t)cap * sizeof *np);
            if (!np) return fr_fail(err, FR_ENOMEM, "out of memory");
            g->people = np, g->people_cap = cap;
        }
        p = g->npeople++;
        snprintf(g->people[p].name, sizeof g->people[p].name, "%s", name);
        g->people[p].examples = 0;
    }
    memcpy(g->emb + g->n * GALLERY_DIM, emb, GALLERY_DIM * sizeof(float));
    g->owner[g->n++] = p;
    g->people[p].examples++;
    return 0;
}

int gallery_remove(struct gallery *g, const char *name)
{
    int p = find(g, name);
    if (p < 0) return FR_ENOTFOUND;
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->owner[i] == p) continue;
        if (k != i) memcpy(g->emb + k * GALLERY_DIM, g->emb + i * GALLERY_DIM, GALLERY_DIM * sizeof(float));
        g->owner[k++] = g->owner[i] > p ? g->owner[i] - 1 : g->owner[i];
    }
    g->n = k;
    memmove(&g->people[p], &g->people[p + 1], (size_t)(g->npeople - p - 1) * sizeof *g->people);
    g->npeople--;
    return 0;
}

int gallery_people(const struct gallery *g)
{
    return g->npeople;
}

size_t gallery_examples(const struct gallery *g)
{
    return g->n;
}

const char *gallery_person(const struct gallery *g, int i, int *examples)
{
    if (i < 0 || i >= g->npeople) return NULL;
    if (examples) *examples = g->people[i].examples;
    return g->people[i].name;
}

/* The best row by dot product; compiled for AVX-512, AVX2 and plain x86-64, chosen at load. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static size_t
best_row(const float *restrict emb, size_t n, const float *restrict q, float *best_sim)
{
    size_t best = 0;
    float bs = -2.0f;
    for (size_t r = 0; r < n; r++) {
        const float *row = emb + r * GALLERY_DIM;
        /* 16 independent partial sums: the compiler may vectorise them without reassociating */
        float part[16] = {0};
        for (int i = 0; i < GALLERY_DIM; i += 16)
            for (int j = 0; j < 16; j++)
                part[j] += row[i + j] * q[i + j];
        float s = 0;
        for (int j = 0; j < 16; j++)
            s += part[j];
        if (s > bs) bs = s, best = r;
    }
    *best_sim = bs;
    return best;
}

void gallery_search(const struct gallery *g, const float emb[GALLERY_DIM], struct gallery_match *best)
{
    best->name = NULL;
    best->similarity = -1.0f;
    if (g->n == 0) return;
    float s;
    size_t r = best_row(g->emb, g->n, emb, &s);
    best->name = g->people[g->owner[r]].name;
    best->similarity = s;
}

/* ---- file format ---- */

static uint32_t crc32(const uint8_t *p, size_t n)
{
    static uint32_t table[256];
    static int ready; /* benign race: every thread computes the same table */
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_append(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_append(b, x, 4);
}

int gallery_serialize(const struct gallery *g, struct buf *out)
{
    size_t start = out->len;
    buf_append(out, MAGIC, sizeof MAGIC);
    put_u16(out, VERSION);
    put_u16(out, GALLERY_DIM);
    put_u32(out, (uint32_t)g->npeople);
    put_u32(out, (uint32_t)g->n);
    for (int p = 0; p < g->npeople; p++) {
        size_t len = strlen(g->people[p].name);
        put_u16(out, (uint16_t)len);
        buf_append(out, g->people[p].name, len);
        put_u32(out, (uint32_t)g->people[p].examples);
        for (size_t r = 0; r < g->n; r++) /* little-endian hosts: floats as they are */
            if (g->owner[r] == p) buf_append(out, g->emb + r * GALLERY_DIM, GALLERY_DIM * sizeof(float));
    }
    if (out->err) return out->err;
    put_u32(out, crc32((const uint8_t *)out->data + start, out->len - start));
    return out->err;
}

struct reader {
    const uint8_t *p;
    size_t left;
};

static int take(struct reader *r, void *dst, size_t n)
{
    if (n > r->left) return FR_EFORMAT;
    memcpy(dst, r->p, n);
    r->p += n, r->left -= n;
    return 0;
}

static int take_u16(struct reader *r, uint16_t *v)
{
    uint8_t x[2];
    if (take(r, x, 2)) return FR_EFORMAT;
    *v = (uint16_t)(x[0] | x[1] << 8);
    return 0;
}

static int take_u32(struct reader *r, uint32_t *v)
{
    uint8_t x[4];
    if (take(r, x, 4)) return FR_EFORMAT;
    *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
    return 0;
}

int gallery_parse(const uint8_t *data, size_t len, struct gallery **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    if (len < sizeof MAGIC + 16 || memcmp(data, MAGIC, sizeof MAGIC) != 0)
        return fr_fail(err, FR_EFORMAT, "not a facerec gallery file");
    struct reader r = {data + sizeof MAGIC, len - sizeof MAGIC - 4};
    uint16_t version, dim;
    uint32_t npeople, n, stored_crc;
    if (take_u16(&r, &version) || take_u16(&r, &dim))
        return fr_fail(err, FR_EFORMAT, "gallery header truncated");
    if (version != VERSION)
        return fr_fail(err, FR_EUNSUPPORTED, "gallery format version %u (this build reads %d)",
                       version, VERSION);
    struct reader tail = {data + len - 4, 4};
    if (take_u32(&tail, &stored_crc) || crc32(data, len - 4) != stored_crc)
        return fr_fail(err, FR_EINTEGRITY, "gallery checksum mismatch: the file is damaged");
    if (dim != GALLERY_DIM)
        return fr_fail(err, FR_EUNSUPPORTED, "gallery of %u-value embeddings (this build: %d)", dim,
                       GALLERY_DIM);
    if (take_u32(&r, &npeople) || take_u32(&r, &n))
        return fr_fail(err, FR_EFORMAT, "gallery header truncated");
    if (n > GALLERY_MAX_EMBEDDINGS || npeople > n + 0u || (size_t)n * GALLERY_DIM * 4 > r.left)
        return fr_fail(err, FR_EFORMAT, "gallery counts do not fit the file");
    struct gallery *g;
    if (gallery_new(&g)) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = 0;
    uint32_t total = 0;
    float emb[GALLERY_DIM];
    for (uint32_t p = 0; p < npeople && !rc; p++) {
        uint16_t nl;
        uint32_t count;
        char name[GALLERY_NAME_MAX + 1];
        if (take_u16(&r, &nl) || nl == 0 || nl > GALLERY_NAME_MAX || take(&r, name, nl)) {
            rc = fr_fail(err, FR_EFORMAT, "gallery person %u: bad name", p);
            break;
        }
        name[nl] = 0;
        if (strlen(name) != nl || !gallery_name_valid(name) || find(g, name) >= 0) {
            rc = fr_fail(err, FR_EFORMAT, "gallery person %u: invalid or repeated name", p);
            break;
        }
        if (take_u32(&r, &count) || count == 0 || count > GALLERY_MAX_PER_PERSON ||
            count > n - total) {
            rc = fr_fail(err, FR_EFORMAT, "gallery person %u: bad example count", p);
            break;
        }
        for (uint32_t k = 0; k < count && !rc; k++) {
            char why[FR_ERR_LEN];
            if (take(&r, emb, sizeof emb)) rc = fr_fail(err, FR_EFORMAT, "gallery truncated");
            else if (gallery_add(g, name, emb, why))
                rc = fr_fail(err, FR_EFORMAT, "gallery person %u: %s", p, why);
        }
        total += count;
    }
    if (!rc && (total != n || r.left != 0))
        rc = fr_fail(err, FR_EFORMAT, "gallery counts do not match its contents");
    if (rc) {
        gallery_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gallery_load(const char *path, struct gallery **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fr_fail(err, errno == ENOENT ? FR_ENOTFOUND : FR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    uint8_t *data = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) rc = fr_fail(err, FR_EIO, "%s: not a file", path);
    else if ((uint64_t)st.st_size > GALLERY_FILE_MAX) rc = fr_fail(err, FR_ETOOBIG, "%s: too large", path);
    else if (!(data = malloc((size_t)st.st_size + 1))) rc = fr_fail(err, FR_ENOMEM, "out of memory");
    size_t got = 0;
    while (!rc && got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) rc = fr_fail(err, FR_EIO, "%s: read failed", path);
        else got += (size_t)n;
    }
    close(fd);
    if (!rc) {
        char why[FR_ERR_LEN];
        rc = gallery_parse(data, got, out, why);
        if (rc) fr_fail(err, rc, "%s: %s", path, why);
    }
    free(data);
    return rc;
}

int gallery_save(const struct gallery *g, const char *path, char err[FR_ERR_LEN])
{
    struct buf b;
    buf_init(&b, GALLERY_FILE_MAX);
    int rc = gallery_serialize(g, &b);
    if (rc) {
        buf_free(&b);
        return fr_fail(err, rc, "gallery too large to save");
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (!rc && off < b.len) {
        ssize_t n = write(fd, b.data + off, b.len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
        else off += (size_t)n;
    }
    if (fd >= 0) {
        if (!rc && fsync(fd) != 0) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
        if (close(fd) != 0 && !rc) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
    }
    if (!rc && rename(tmp, path) != 0) rc = fr_fail(err, FR_EIO, "%s: %s", path, strerror(errno));
    if (rc && fd >= 0) unlink(tmp);
    buf_free(&b);
    return rc;
}
