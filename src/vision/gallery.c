/* gallery.c: embeddings in one contiguous matrix whose rows remember their owner; people in an
 * array in insertion order with a hash index by name, so adding, parsing and serialising stay
 * linear in the size of the gallery. */
#include "vision/gallery.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/text.h"

_Static_assert(GALLERY_DIM % 16 == 0, "the dot product works in blocks of 16");
_Static_assert(GALLERY_DIM * sizeof(float) % 64 == 0, "every row starts 64-byte aligned");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file format stores floats as is");
_Static_assert(GALLERY_MAX_EMBEDDINGS <= INT32_MAX, "row and person numbers fit an int");

static const char MAGIC[6] = {'F', 'R', 'G', 'A', 'L', 0x1a};
#define VERSION 1
#define HEADER 18                         /* magic, version, dim, people, embeddings */
#define ROW (GALLERY_DIM * sizeof(float)) /* bytes of one embedding */
#define RECORD_MIN (2 + 1 + 4 + ROW)      /* the smallest person record */
#define NORM_TOLERANCE 1e-3               /* on the squared norm */
#define HUGE_PAGE ((size_t)2 << 20)
#define BLOCK 256 /* rows scored per kernel call */
_Static_assert(HEADER + 4 + (uint64_t)GALLERY_MAX_EMBEDDINGS * (6 + GALLERY_NAME_MAX + ROW) <=
                   GALLERY_FILE_MAX,
               "the largest gallery the caps allow fits the file cap");

struct person {
    char name[GALLERY_NAME_MAX + 1];
    int examples;
};

struct gallery {
    struct person *people; /* in the order first added */
    int npeople, people_cap;
    int *index;       /* open addressing by name hash: person + 1, or 0 for an empty slot */
    size_t index_cap; /* 0 or a power of two, at least twice npeople */
    float *emb;       /* n x GALLERY_DIM, row-major, 64-byte aligned */
    int *owner;       /* person of each row */
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
    free(g->index);
    free(g->emb);
    free(g->owner);
    free(g);
}

/* ---- names ---- */

/* Why name cannot name a person, or NULL when it can. */
static const char *name_problem(const char *name)
{
    size_t n = strnlen(name, GALLERY_NAME_MAX + 1);
    if (n == 0) return "is empty";
    if (n > GALLERY_NAME_MAX) return "is longer than 128 bytes";
    if (!strcmp(name, ".") || !strcmp(name, "..")) return "is . or ..";
    if (name[0] == ' ' || name[n - 1] == ' ') return "starts or ends with a space";
    for (const unsigned char *p = (const unsigned char *)name; *p;) {
        int len = utf8_len(p);
        if (!len) return "is not valid UTF-8";
        if (len == 1 && (*p < 0x20 || *p == 0x7f)) return "has a control character";
        if (len == 2 && p[0] == 0xc2 && p[1] < 0xa0) return "has a control character"; /* C1 */
        if (*p == '/' || *p == '\\') return "has a / or \\";
        p += len;
    }
    return NULL;
}

int gallery_name_valid(const char *name)
{
    return name && !name_problem(name);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h ^ (h >> 29);
}

/* The index of the person called name, or -1. */
static int find(const struct gallery *g, const char *name)
{
    if (!g->index_cap) return -1;
    size_t mask = g->index_cap - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        int p = g->index[i] - 1;
        if (p < 0) return -1;
        if (!strcmp(g->people[p].name, name)) return p;
    }
}

static void index_insert(int *index, size_t cap, const char *name, int p)
{
    size_t i = name_hash(name) & (cap - 1);
    while (index[i])
        i = (i + 1) & (cap - 1);
    index[i] = p + 1;
}

/* Makes room for people more people, in both the array and the index. Returns 0 or
 * FR_ENOMEM, g unchanged on failure. */
static int reserve_people(struct gallery *g, int more)
{
    size_t want = (size_t)g->npeople + (size_t)more;
    if (want > (size_t)g->people_cap) {
        size_t cap = g->people_cap ? (size_t)g->people_cap : 16;
        while (cap < want)
            cap *= 2;
        struct person *np = realloc(g->people, cap * sizeof *np);
        if (!np) return FR_ENOMEM;
        g->people = np, g->people_cap = (int)cap;
    }
    if (want * 2 > g->index_cap) {
        size_t cap = g->index_cap ? g->index_cap : 64;
        while (cap < want * 2)
            cap *= 2;
        int *index = calloc(cap, sizeof *index);
        if (!index) return FR_ENOMEM;
        for (int p = 0; p < g->npeople; p++)
            index_insert(index, cap, g->people[p].name, p);
        free(g->index);
        g->index = index, g->index_cap = cap;
    }
    return 0;
}

/* Appends a person with no examples yet; room reserved. Returns their index. */
static int new_person(struct gallery *g, const char *name, size_t len)
{
    int p = g->npeople++;
    memcpy(g->people[p].name, name, len);
    g->people[p].name[len] = 0;
    g->people[p].examples = 0;
    index_insert(g->index, g->index_cap, g->people[p].name, p);
    return p;
}

/* ---- embeddings ---- */

/* size bytes, 64-byte aligned; free() frees them. Big ones ask for transparent huge pages (where
 * THP is in "madvise" mode, as on Debian): the first touch of 77 MB then takes 40 page faults
 * instead of 19,000 (in a VM here: 230 ms with small pages; 5 ms with huge ones when the kernel
 * has them free, 140 ms when it must make them), and a scan misses the TLB less. */
static void *big_alloc(size_t size)
{
    if (size < HUGE_PAGE) return aligned_alloc(64, (size + 63) / 64 * 64);
    size = (size + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, size);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, size, MADV_HUGEPAGE); /* advice: without it, small pages */
#endif
    return p;
}

/* Makes room for rows rows (at most GALLERY_MAX_EMBEDDINGS): exactly that many in an empty
 * gallery, so a parsed gallery takes no more memory than it needs. Returns 0 or FR_ENOMEM, g
 * unchanged on failure. */
static int reserve_rows(struct gallery *g, size_t rows)
{
    if (rows <= g->cap) return 0;
    size_t cap = g->cap ? g->cap * 2 : 64;
    if (cap < rows) cap = rows;
    if (cap > GALLERY_MAX_EMBEDDINGS) cap = GALLERY_MAX_EMBEDDINGS;
    float *e = big_alloc(cap * ROW);
    int *o = malloc(cap * sizeof *o);
    if (!e || !o) {
        free(e), free(o);
        return FR_ENOMEM;
    }
    if (g->n) {
        memcpy(e, g->emb, g->n * ROW);
        memcpy(o, g->owner, g->n * sizeof *o);
    }
    free(g->emb), free(g->owner);
    g->emb = e, g->owner = o, g->cap = cap;
    return 0;
}

/* Why emb cannot be an example, or NULL when it can. */
static const char *emb_problem(const float *emb)
{
    double norm = 0;
    for (int i = 0; i < GALLERY_DIM; i++) {
        if (!isfinite(emb[i])) return "is not finite";
        norm += (double)emb[i] * emb[i];
    }
    return fabs(norm - 1.0) <= NORM_TOLERANCE ? NULL : "is not unit length";
}

int gallery_add(struct gallery *g, const char *name, const float emb[GALLERY_DIM],
                char err[FR_ERR_LEN])
{
    const char *why = name ? name_problem(name) : "is missing";
    if (why) return fr_fail(err, FR_EINVAL, "invalid person name: it %s", why);
    if ((why = emb_problem(emb))) return fr_fail(err, FR_EINVAL, "the embedding %s", why);
    if (g->n >= GALLERY_MAX_EMBEDDINGS)
        return fr_fail(err, FR_ETOOBIG, "the gallery is full (%d examples)",
                       GALLERY_MAX_EMBEDDINGS);
    int p = find(g, name);
    if (p >= 0 && g->people[p].examples >= GALLERY_MAX_PER_PERSON)
        return fr_fail(err, FR_ETOOBIG, "%s has the most examples allowed (%d)", name,
                       GALLERY_MAX_PER_PERSON);
    if (reserve_rows(g, g->n + 1) || (p < 0 && reserve_people(g, 1)))
        return fr_fail(err, FR_ENOMEM, "out of memory");
    if (p < 0) p = new_person(g, name, strlen(name));
    memcpy(g->emb + g->n * GALLERY_DIM, emb, ROW);
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
        if (k != i) memcpy(g->emb + k * GALLERY_DIM, g->emb + i * GALLERY_DIM, ROW);
        g->owner[k++] = g->owner[i] > p ? g->owner[i] - 1 : g->owner[i];
    }
    g->n = k;
    memmove(&g->people[p], &g->people[p + 1], (size_t)(g->npeople - p - 1) * sizeof *g->people);
    g->npeople--;
    /* people after p moved down one: rebuild the index in place (no allocation, cannot fail) */
    memset(g->index, 0, g->index_cap * sizeof *g->index);
    for (int i = 0; i < g->npeople; i++)
        index_insert(g->index, g->index_cap, g->people[i].name, i);
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

int gallery_examples_of(const struct gallery *g, const char *name)
{
    int p = find(g, name);
    return p < 0 ? 0 : g->people[p].examples;
}

/* ---- search ---- */

/* out[r] = row r . q for n rows. Sixteen independent partial sums per row let the compiler
 * vectorise without reassociating; compiled for AVX-512, AVX2 and plain x86-64, chosen when the
 * program loads. Clones are named by feature: clang 14 resolves "arch=x86-64-v4" to the default
 * clone, and "arch=<cpu>" clones test the CPU model, not what it can do. */
#if defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void
dot_rows(const float *restrict m, size_t n, const float *restrict q, float *restrict out)
{
    for (size_t r = 0; r < n; r++) {
        const float *row = m + r * GALLERY_DIM;
        float part[16] = {0};
        for (int i = 0; i < GALLERY_DIM; i += 16)
            for (int j = 0; j < 16; j++)
                part[j] += row[i + j] * q[i + j];
        float s = 0;
        for (int j = 0; j < 16; j++)
            s += part[j];
        out[r] = s;
    }
}

int gallery_search_top(const struct gallery *g, const float emb[GALLERY_DIM], float threshold,
                       struct gallery_match *top, int k)
{
    if (k < 1 || k > GALLERY_TOP_MAX) return FR_EINVAL;
    /* top[0..found) best first, who[] their people. A row enters when it beats the k-th (or fills
     * a free place) and replaces its own person's entry if that was lower. The k-th similarity
     * only rises, so a person dropped from the list never belonged in the final one. */
    int who[GALLERY_TOP_MAX];
    int found = 0;
    float sims[BLOCK];
    for (size_t r0 = 0; r0 < g->n; r0 += BLOCK) {
        size_t rows = g->n - r0 < BLOCK ? g->n - r0 : BLOCK;
        dot_rows(g->emb + r0 * GALLERY_DIM, rows, emb, sims);
        for (size_t i = 0; i < rows; i++) {
            float s = sims[i];
            if (!(s >= threshold) || (found == k && !(s > top[k - 1].similarity))) continue;
            int p = g->owner[r0 + i], at = found;
            for (int j = 0; j < found; j++)
                if (who[j] == p) at = j;
            if (at < found && !(s > top[at].similarity)) continue;
            if (at == found && found == k)
                at = k - 1; /* the k-th leaves */
            else if (at == found)
                found++;
            while (at > 0 && s > top[at - 1].similarity) { /* move up to its place */
                top[at] = top[at - 1], who[at] = who[at - 1];
                at--;
            }
            top[at].similarity = s, who[at] = p;
        }
    }
    for (int j = 0; j < found; j++)
        top[j].name = g->people[who[j]].name;
    return found;
}

void gallery_search(const struct gallery *g, const float emb[GALLERY_DIM],
                    struct gallery_match *best)
{
    if (gallery_search_top(g, emb, -INFINITY, best, 1) != 1) {
        best->name = NULL;
        best->similarity = -1.0f;
    }
}

/* ---- file format ---- */

/* CRC-32 by slicing eight bytes at a time; the tables are made once, then only read. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint32_t(*t)[256] = (const uint32_t(*)[256])crc_table;
    uint32_t c = 0xffffffffu;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t a = c ^ rd32(p), b = rd32(p + 4);
        c = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
            t[3][b & 0xff] ^ t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
    }
    for (; n; p++, n--)
        c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

/* The file image of g, exactly *len bytes, into *out (the caller frees it). Built in one piece
 * of the right size: growing a buffer as it goes costs ten times as much at 100,000 examples.
 * Returns 0, FR_ETOOBIG (over max bytes) or FR_ENOMEM. */
static int image(const struct gallery *g, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL, *len = 0;
    size_t size = HEADER + 4 + g->n * ROW;
    for (int p = 0; p < g->npeople; p++)
        size += 2 + strlen(g->people[p].name) + 4;
    if (size > max) return FR_ETOOBIG;
    uint8_t *img = big_alloc(size);
    /* each person's rows together, in the order added: a counting sort by owner */
    size_t *next = malloc(((size_t)g->npeople + 1) * sizeof *next);
    uint32_t *order = malloc((g->n ? g->n : 1) * sizeof *order);
    if (!img || !next || !order) {
        free(img), free(next), free(order);
        return FR_ENOMEM;
    }
    next[0] = 0;
    for (int p = 0; p < g->npeople; p++)
        next[p + 1] = next[p] + (size_t)g->people[p].examples;
    for (size_t r = 0; r < g->n; r++)
        order[next[g->owner[r]]++] = (uint32_t)r;

    memcpy(img, MAGIC, sizeof MAGIC);
    wr16(img + 6, VERSION);
    wr16(img + 8, GALLERY_DIM);
    wr32(img + 10, (uint32_t)g->npeople);
    wr32(img + 14, (uint32_t)g->n);
    size_t off = HEADER, r = 0;
    for (int p = 0; p < g->npeople; p++) {
        size_t nl = strlen(g->people[p].name);
        wr16(img + off, (uint16_t)nl);
        memcpy(img + off + 2, g->people[p].name, nl);
        wr32(img + off + 2 + nl, (uint32_t)g->people[p].examples);
        off += 6 + nl;
        for (int k = 0; k < g->people[p].examples; k++, off += ROW) /* floats as is: LE host */
            memcpy(img + off, g->emb + (size_t)order[r++] * GALLERY_DIM, ROW);
    }
    wr32(img + off, crc32_ieee(img, off));
    free(next), free(order);
    *out = img, *len = size;
    return 0;
}

int gallery_serialize(const struct gallery *g, struct buf *out)
{
    if (out->err) return out->err;
    uint8_t *img;
    size_t len;
    int rc = image(g, out->max - out->len, &img, &len);
    if (rc) return out->err = rc;
    rc = buf_append(out, img, len);
    free(img);
    return rc;
}

/* Why the checksum of len bytes did not match. The records the header describes, walked with
 * every length checked, need more bytes than there are (cut short: FR_EFORMAT), end before the
 * checksum's place (appended to: FR_EFORMAT) or right there (bytes changed: FR_EINTEGRITY). */
static int damage(const uint8_t *data, size_t len, char err[FR_ERR_LEN])
{
    size_t body = len - 4, off = HEADER;
    uint32_t npeople = rd32(data + 10);
    int cut = 0;
    for (uint32_t p = 0; p < npeople && !cut; p++) { /* 6 bytes or more a step: bounded by len */
        size_t nl = 0;
        if (body - off < 2 || body - off - 2 < (nl = rd16(data + off)) + 4) {
            cut = 1;
        } else {
            off += 2 + nl;
            uint32_t count = rd32(data + off);
            off += 4;
            if ((body - off) / ROW < count)
                cut = 1;
            else
                off += (size_t)count * ROW;
        }
    }
    if (cut)
        return fr_fail(err, FR_EFORMAT,
                       "gallery file is truncated (%zu bytes, fewer than its header describes) "
                       "or its header is damaged",
                       len);
    if (off < body)
        return fr_fail(err, FR_EFORMAT,
                       "gallery file has %zu unexpected bytes after its records: appended to or "
                       "damaged",
                       body - off);
    return fr_fail(err, FR_EINTEGRITY, "gallery checksum mismatch: the file is damaged");
}

/* Reads the records after a good checksum into g, which has room for npeople and n. */
static int parse_records(struct gallery *g, const uint8_t *data, size_t body, uint32_t npeople,
                         uint32_t n, char err[FR_ERR_LEN])
{
    size_t off = HEADER;
    uint32_t total = 0;
    for (uint32_t p = 0; p < npeople; p++) {
        if (body - off < 2) return fr_fail(err, FR_EFORMAT, "gallery person %u: truncated", p);
        size_t nl = rd16(data + off);
        off += 2;
        if (nl == 0 || nl > GALLERY_NAME_MAX || body - off < nl + 4)
            return fr_fail(err, FR_EFORMAT, "gallery person %u: bad name length %zu", p, nl);
        char name[GALLERY_NAME_MAX + 1];
        memcpy(name, data + off, nl);
        name[nl] = 0;
        off += nl;
        const char *why = strlen(name) != nl ? "has a NUL byte" : name_problem(name);
        if (why) return fr_fail(err, FR_EFORMAT, "gallery person %u: the name %s", p, why);
        if (find(g, name) >= 0)
            return fr_fail(err, FR_EFORMAT, "gallery person %u: %s appears twice", p, name);
        uint32_t count = rd32(data + off);
        off += 4;
        if (count == 0 || count > GALLERY_MAX_PER_PERSON || count > n - total ||
            (body - off) / ROW < count)
            return fr_fail(err, FR_EFORMAT, "gallery person %u (%s): bad example count %u", p, name,
                           count);
        int who = new_person(g, name, nl);
        for (uint32_t k = 0; k < count; k++, off += ROW) {
            float *row = g->emb + g->n * GALLERY_DIM;
            memcpy(row, data + off, ROW);
            if ((why = emb_problem(row)))
                return fr_fail(err, FR_EFORMAT, "gallery person %u (%s): example %u %s", p, name, k,
                               why);
            g->owner[g->n++] = who;
        }
        g->people[who].examples = (int)count;
        total += count;
    }
    if (total != n || off != body)
        return fr_fail(err, FR_EFORMAT, "gallery counts do not match its records");
    return 0;
}

int gallery_parse(const uint8_t *data, size_t len, struct gallery **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    if (len > GALLERY_FILE_MAX)
        return fr_fail(err, FR_ETOOBIG, "gallery file of %zu bytes is over the %zu-byte cap", len,
                       GALLERY_FILE_MAX);
    if (len == 0) return fr_fail(err, FR_EFORMAT, "gallery file is empty");
    if (memcmp(data, MAGIC, len < sizeof MAGIC ? len : sizeof MAGIC) != 0)
        return fr_fail(err, FR_EFORMAT, "not a facerec gallery file");
    if (len < HEADER + 4)
        return fr_fail(err, FR_EFORMAT, "gallery file is truncated (%zu bytes)", len);
    uint16_t version = rd16(data + 6);
    if (version != VERSION)
        return fr_fail(err, FR_EUNSUPPORTED,
                       "gallery format version %u is not supported (this build reads version %d)",
                       version, VERSION);
    size_t body = len - 4;
    if (crc32_ieee(data, body) != rd32(data + body)) return damage(data, len, err);

    uint16_t dim = rd16(data + 8);
    uint32_t npeople = rd32(data + 10), n = rd32(data + 14);
    if (dim != GALLERY_DIM)
        return fr_fail(err, FR_EUNSUPPORTED, "gallery of %u-value embeddings (this build uses %d)",
                       dim, GALLERY_DIM);
    if (n > GALLERY_MAX_EMBEDDINGS)
        return fr_fail(err, FR_EFORMAT, "gallery of %u examples is over the cap of %d", n,
                       GALLERY_MAX_EMBEDDINGS);
    /* allocations are bounded by the bytes there are, not by what the header claims */
    if (npeople > n || (size_t)n * ROW > body - HEADER || npeople > (body - HEADER) / RECORD_MIN)
        return fr_fail(err, FR_EFORMAT,
                       "gallery counts (%u people, %u examples) do not fit the "
                       "file",
                       npeople, n);
    struct gallery *g;
    if (gallery_new(&g)) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = 0;
    if (reserve_rows(g, n) || reserve_people(g, (int)npeople))
        rc = fr_fail(err, FR_ENOMEM, "out of memory for a gallery of %u examples", n);
    if (!rc) rc = parse_records(g, data, body, npeople, n, err);
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
        return fr_fail(err, errno == ENOENT ? FR_ENOTFOUND : FR_EIO, "%s: %s", path,
                       strerror(errno));
    struct stat st;
    int rc = 0;
    uint8_t *data = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = fr_fail(err, FR_EIO, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > GALLERY_FILE_MAX)
        rc = fr_fail(err, FR_ETOOBIG, "%s: %lld bytes is over the %zu-byte cap", path,
                     (long long)st.st_size, GALLERY_FILE_MAX);
    else if (!(data = malloc((size_t)st.st_size + 1)))
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
    size_t got = 0;
    while (!rc && got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            rc = fr_fail(err, FR_EIO, "%s: %s", path, strerror(errno));
        else if (n == 0)
            rc = fr_fail(err, FR_EIO, "%s: shrank while being read", path);
        else
            got += (size_t)n;
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

/* fsync of the directory holding path, so that a rename into it survives a power cut. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && errno == EINVAL) rc = 0; /* a file system without directory fsync */
    close(fd);
    return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

int gallery_save(const struct gallery *g, const char *path, char err[FR_ERR_LEN])
{
    char tmp[4096];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%ld", path, (long)getpid(), (long)gettid());
    if (len < 0 || (size_t)len >= sizeof tmp)
        return fr_fail(err, FR_EINVAL, "gallery path is too long");
    uint8_t *img;
    size_t size;
    int rc = image(g, GALLERY_FILE_MAX, &img, &size);
    if (rc) return fr_fail(err, rc, "%s: cannot save the gallery: %s", path, fr_strerror(rc));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc && write_all(fd, img, size) != 0)
        rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc && fsync(fd) != 0) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !rc) rc = fr_fail(err, FR_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = fr_fail(err, FR_EIO, "%s: %s", path, strerror(errno));
    if (rc && fd >= 0) unlink(tmp);
    if (!rc && sync_dir(path) != 0)
        rc = fr_fail(err, FR_EIO, "%s: saved, but the directory fsync failed: %s", path,
                     strerror(errno));
    free(img);
    return rc;
}
