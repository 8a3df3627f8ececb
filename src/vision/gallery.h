/* gallery.h: the people the service knows: per-person face embeddings, searched by cosine
 * similarity, saved in a versioned, checksummed format.
 *
 * Embeddings are GALLERY_DIM floats of unit length, so cosine similarity is a dot product. They
 * live in one 64-byte-aligned row-major matrix that a search scans in full (vectorised; about
 * 2-3 ms for 100,000 examples on one core, memory bound); a person's score is their best
 * example.
 *
 * File format, version 1 (all integers little-endian, floats IEEE-754 binary32 little-endian):
 *   offset 0   6 bytes  magic "FRGAL\x1a"
 *   offset 6   u16      version, 1
 *   offset 8   u16      dim, GALLERY_DIM
 *   offset 10  u32      people P
 *   offset 14  u32      embeddings N (<= GALLERY_MAX_EMBEDDINGS)
 *   offset 18  P records, in the gallery's order of people:
 *                u16 name length L (1..GALLERY_NAME_MAX), L bytes of name (gallery_name_valid,
 *                no two the same), u32 examples C (1..GALLERY_MAX_PER_PERSON),
 *                C x dim float32 (finite, squared norm within 1e-3 of 1), in the order added
 *   last 4     u32      CRC-32 (IEEE 802.3: reflected 0xEDB88320, init and final xor
 *                       0xFFFFFFFF; "123456789" -> 0xCBF43926) of every byte before it
 * The C values sum to N. Serialising a parsed file gives back the same bytes.
 *
 * Reading checks, in order: magic (FR_EFORMAT), version (FR_EUNSUPPORTED, naming it), the
 * checksum before any other field is used (FR_EFORMAT when the bytes are fewer or more than the
 * header and records describe, i.e. truncated or appended to; FR_EINTEGRITY otherwise), then
 * every count, length, name and value against the rules above (FR_EUNSUPPORTED for another dim,
 * FR_EFORMAT for the rest). A damaged or foreign file is an error, never garbage results.
 *
 * Threads: a gallery is not locked. Modify it from one thread; once built, any number of threads
 * may read it (search, enumerate, serialise) at the same time: readers change nothing. */
#ifndef FR_VISION_GALLERY_H
#define FR_VISION_GALLERY_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define GALLERY_DIM 192
#define GALLERY_NAME_MAX 128               /* bytes */
#define GALLERY_MAX_PER_PERSON 1000        /* examples of one person */
#define GALLERY_MAX_EMBEDDINGS 1000000     /* examples in all: 768 MB of floats */
#define GALLERY_TOP_MAX 100                /* k of gallery_search_top */
#define GALLERY_FILE_MAX ((size_t)1 << 30) /* holds the largest gallery the caps allow */

struct gallery;

struct gallery_match {
    const char *name; /* owned by the gallery, valid until it changes; NULL when no match */
    float similarity; /* cosine, -1..1 (a little past 1 from rounding) */
};

/* An empty gallery. Returns 0 or FR_ENOMEM; free it with gallery_free. */
int gallery_new(struct gallery **out) FR_MUST_USE;
void gallery_free(struct gallery *g); /* NULL does nothing */

/* 1 when name can name a person, else 0: 1..GALLERY_NAME_MAX bytes of valid UTF-8 without
 * control characters (C0, DEL, C1), '/' or '\\', not "." or "..", no leading or trailing space.
 * Names become URL paths and object keys, hence the rules. */
int gallery_name_valid(const char *name);

/* Adds one example for name, creating the person (last in order) if new; the gallery copies emb.
 * Returns 0, or with err saying why and g unchanged: FR_EINVAL (invalid name, embedding not
 * finite or not unit length), FR_ETOOBIG (GALLERY_MAX_PER_PERSON or GALLERY_MAX_EMBEDDINGS
 * reached), FR_ENOMEM. */
int gallery_add(struct gallery *g, const char *name, const float emb[GALLERY_DIM],
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Removes the person and all their examples; the others keep their order. Returns 0 or
 * FR_ENOTFOUND. */
int gallery_remove(struct gallery *g, const char *name) FR_MUST_USE;

int gallery_people(const struct gallery *g);      /* number of people */
size_t gallery_examples(const struct gallery *g); /* number of embeddings, all people */

/* Person i (0 <= i < gallery_people) in the order first added, and their number of examples
 * (examples may be NULL). The name is owned by g, valid until it changes; NULL for i out of
 * range. */
const char *gallery_person(const struct gallery *g, int i, int *examples);

/* The number of examples of name: 0 when there is no such person. */
int gallery_examples_of(const struct gallery *g, const char *name);

/* The nearest person over every example, however far: best->name NULL and similarity -1 when g
 * is empty (or emb has NaNs). Callers compare the similarity with their threshold; below it the
 * face is Unknown (gallery_search_top applies one itself). */
void gallery_search(const struct gallery *g, const float emb[GALLERY_DIM],
                    struct gallery_match *best);

/* The k best distinct people whose best example is at least threshold, best first, into
 * top[0..k-1]. Returns how many were found: 0 means Unknown (a stranger, or an empty gallery);
 * FR_EINVAL when k is not 1..GALLERY_TOP_MAX. Equal similarities: the earlier example wins. */
int gallery_search_top(const struct gallery *g, const float emb[GALLERY_DIM], float threshold,
                       struct gallery_match *top, int k);

/* Appends the file format to out (its max caps the size). Returns 0, FR_ETOOBIG (past out->max)
 * or FR_ENOMEM; also fails with out->err when out already had an error. */
int gallery_serialize(const struct gallery *g, struct buf *out) FR_MUST_USE;

/* Parses the file format from len bytes at data (at most GALLERY_FILE_MAX). Returns 0 with *out a
 * new gallery (the caller frees it), or, with *out NULL and err naming the problem: FR_EFORMAT,
 * FR_EINTEGRITY, FR_EUNSUPPORTED (see the top of this file), FR_ETOOBIG, FR_ENOMEM. */
int gallery_parse(const uint8_t *data, size_t len, struct gallery **out,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

/* Reads a gallery file of at most GALLERY_FILE_MAX bytes. Returns 0 with *out a new gallery, or
 * with *out NULL: FR_ENOTFOUND (no such file), FR_EIO, FR_ETOOBIG, or gallery_parse's errors;
 * err starts with the path. */
int gallery_load(const char *path, struct gallery **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Writes g to path atomically: a temp file in the same directory (path.tmp.PID.TID, mode 0644
 * less the umask), fsync, rename over path, fsync of the directory. Readers see the old file or
 * the new one, never a mix. Returns 0, FR_ETOOBIG, FR_ENOMEM or FR_EIO (path unchanged, temp file
 * removed; if only the directory fsync failed, the new file is in place but may not survive a
 * power cut). */
int gallery_save(const struct gallery *g, const char *path, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
