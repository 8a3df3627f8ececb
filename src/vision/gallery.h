/* gallery.h: the people the service knows: per-person face embeddings, searched by cosine
 * similarity, saved in a versioned, checksummed format.
 *
 * File format (little-endian), version 1:
 *   "FRGAL\x1a"  magic, 6 bytes
 *   u16 version (1), u16 dim (192), u32 people, u32 embeddings
 *   per person: u16 name length, name bytes (UTF-8), u32 count, count x dim float32
 *   u32 CRC-32 (IEEE) of every byte before it
 * A damaged, truncated or foreign file is an error (FR_EINTEGRITY, FR_EFORMAT or
 * FR_EUNSUPPORTED), never a gallery with garbage in it.
 *
 * A gallery is not locked: modify it from one thread; search it from many once it is built. */
#ifndef FR_VISION_GALLERY_H
#define FR_VISION_GALLERY_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define GALLERY_DIM 192
#define GALLERY_NAME_MAX 128
#define GALLERY_MAX_PER_PERSON 1000
#define GALLERY_MAX_EMBEDDINGS 1000000

struct gallery;

struct gallery_match {
    const char *name; /* owned by the gallery; valid until it changes; NULL when empty */
    float similarity; /* cosine, -1..1 */
};

int gallery_new(struct gallery **out) FR_MUST_USE;
void gallery_free(struct gallery *g); /* NULL does nothing */

/* 1 when name can name a person: 1..GALLERY_NAME_MAX bytes of valid UTF-8, no control
 * characters, no '/' or '\\', not "." or "..", no leading or trailing space. */
int gallery_name_valid(const char *name);

/* Adds one example (a unit-length embedding) for name, creating the person if new.
 * Returns 0, FR_EINVAL (bad name or embedding), FR_ETOOBIG (caps), FR_ENOMEM. */
int gallery_add(struct gallery *g, const char *name, const float emb[GALLERY_DIM],
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Removes the person and their examples. Returns 0 or FR_ENOTFOUND. */
int gallery_remove(struct gallery *g, const char *name) FR_MUST_USE;

int gallery_people(const struct gallery *g);     /* number of people */
size_t gallery_examples(const struct gallery *g); /* number of embeddings */

/* Person i (0 <= i < gallery_people) and their number of examples, in insertion order. */
const char *gallery_person(const struct gallery *g, int i, int *examples);

/* The best match over every example: best->name NULL and similarity -1 when g is empty. */
void gallery_search(const struct gallery *g, const float emb[GALLERY_DIM],
                    struct gallery_match *best);

/* Appends the file format to out. Returns 0 or out's error (FR_ETOOBIG, FR_ENOMEM). */
int gallery_serialize(const struct gallery *g, struct buf *out) FR_MUST_USE;

/* Parses the file format. Returns 0 with *out a new gallery, or FR_EFORMAT / FR_EINTEGRITY /
 * FR_EUNSUPPORTED / FR_ETOOBIG / FR_ENOMEM with err naming the problem. */
int gallery_parse(const uint8_t *data, size_t len, struct gallery **out,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

#define GALLERY_FILE_MAX ((size_t)1 << 30)

/* Reads a gallery file (at most GALLERY_FILE_MAX bytes). FR_ENOTFOUND when it does not exist;
 * otherwise gallery_parse's errors, or FR_EIO. */
int gallery_load(const char *path, struct gallery **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Writes g to path atomically (temp file in the same directory, fsync, rename). */
int gallery_save(const struct gallery *g, const char *path, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
