/* people.h: the gallery as one object in the store (S3_OUT_BUCKET, key "gallery"), so that every
 * worker on every host sees the same people. Workers keep a copy and reload it when the
 * object's version changes. */
#ifndef FR_SERVICE_PEOPLE_H
#define FR_SERVICE_PEOPLE_H

#include "store/store.h"
#include "vision/gallery.h"

#define PEOPLE_KEY "gallery"

struct people_cache {
    struct gallery *g; /* never NULL after a successful refresh */
    char ver[64];      /* version of the object g came from; "" for none */
    double checked;    /* CLOCK_MONOTONIC ms of the last version check */
};

/* Loads the stored gallery into *g (an empty one when none is stored yet) and its version. */
int people_load(struct store *s, const struct config *c, struct gallery **g, char ver[64],
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Stores g as the gallery. */
int people_save(struct store *s, const struct config *c, const struct gallery *g,
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Makes pc->g current: reloads when the stored version changed, checking at most every
 * max_age_ms (0: every call). On error pc->g stays as it was (possibly stale) and the error is
 * returned. */
int people_refresh(struct people_cache *pc, struct store *s, const struct config *c,
                   double max_age_ms, char err[FR_ERR_LEN]) FR_MUST_USE;

void people_cache_free(struct people_cache *pc);

#endif
