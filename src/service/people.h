/* people.h: the gallery as one object in the store (S3_OUT_BUCKET, key "gallery"), so that every
 * worker on every host sees the same people. Workers keep a copy and reload it when the
 * object's version changes.
 *
 * Each person also has a thumbnail for the web page: a PEOPLE_PHOTO_SIDE px square JPEG of the
 * face, stored in S3_OUT_BUCKET under "photo-" + the lowercase hex of the name's UTF-8 bytes
 * (people_photo_key: any valid name gives a valid key of at most 262 bytes, and no key of
 * another kind starts so: job results are UUIDs). Enrolment replaces it with the first face of
 * the request; deleting the person deletes it. */
#ifndef FR_SERVICE_PEOPLE_H
#define FR_SERVICE_PEOPLE_H

#include "store/store.h"
#include "vision/gallery.h"
#include "vision/image.h"
#include "vision/mtcnn.h"

#define PEOPLE_KEY "gallery"
#define PEOPLE_PHOTO_SIDE 160
#define PEOPLE_PHOTO_MAX ((size_t)1 << 20) /* read cap of a stored thumbnail */
#define PEOPLE_PHOTO_KEY_LEN (6 + 2 * GALLERY_NAME_MAX)

struct people_cache {
    struct gallery *g; /* never NULL after a successful refresh */
    char ver[64];      /* version of the object g came from; "" for none */
    double checked;    /* CLOCK_MONOTONIC ms of the last version check */
};

/* Loads the stored gallery into *g (an empty one when none is stored yet) and its version. */
int people_load(struct store *s, const struct config *c, struct gallery **g, char ver[64],
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Stores g as the gallery if the stored one is still at version ver ("" for none stored yet),
 * and sets ver to the new version: FR_ECONFLICT when someone else stored a gallery since ver was
 * read (store_put_if). */
int people_save(struct store *s, const struct config *c, const struct gallery *g, char ver[64],
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Makes pc->g current: reloads when the stored version changed, checking at most every
 * max_age_ms (0: every call). On error pc->g stays as it was (possibly stale) and the error is
 * returned. */
int people_refresh(struct people_cache *pc, struct store *s, const struct config *c,
                   double max_age_ms, char err[FR_ERR_LEN]) FR_MUST_USE;

void people_cache_free(struct people_cache *pc);

/* Writes the thumbnail's object key for a valid person name into key. */
void people_photo_key(const char *name, char key[PEOPLE_PHOTO_KEY_LEN + 1]);

/* Encodes the thumbnail of the face at box (in the stored photo's pixels, as recognizer_run
 * reports them, also when img was decoded reduced) in img: a square around the face, grown past the box
 * and kept inside the image where it fits, as a PEOPLE_PHOTO_SIDE px JPEG into *jpeg (caller
 * frees). Returns 0, FR_EINVAL (empty box), FR_ENOMEM or the image_encode_jpeg errors. */
int people_photo_make(const struct image *img, const struct face_box *box, uint8_t **jpeg,
                      size_t *len, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
