#include "service/people.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int people_load(struct store *s, const struct config *c, struct gallery **g, char ver[64],
                char err[FR_ERR_LEN])
{
    *g = NULL;
    ver[0] = 0;
    /* version first: if the object changes between the two calls, the next check reloads */
    int rc = store_version(s, c->s3_out_bucket, PEOPLE_KEY, ver, err);
    uint8_t *data = NULL;
    size_t len = 0;
    if (!rc) rc = store_get(s, c->s3_out_bucket, PEOPLE_KEY, GALLERY_FILE_MAX, &data, &len, err);
    if (rc == FR_ENOTFOUND) {
        ver[0] = 0;
        return gallery_new(g) ? fr_fail(err, FR_ENOMEM, "out of memory") : 0;
    }
    if (rc) return rc;
    char why[FR_ERR_LEN];
    rc = gallery_parse(data, len, g, why);
    free(data);
    if (rc) return fr_fail(err, rc, "stored gallery: %s", why);
    return 0;
}

int people_save(struct store *s, const struct config *c, const struct gallery *g,
                char err[FR_ERR_LEN])
{
    struct buf b;
    buf_init(&b, GALLERY_FILE_MAX);
    int rc = gallery_serialize(g, &b);
    if (rc) rc = fr_fail(err, rc, "gallery too large");
    else rc = store_put(s, c->s3_out_bucket, PEOPLE_KEY, b.data, b.len, err);
    buf_free(&b);
    return rc;
}

int people_refresh(struct people_cache *pc, struct store *s, const struct config *c,
                   double max_age_ms, char err[FR_ERR_LEN])
{
    double now = now_ms();
    if (pc->g && now - pc->checked < max_age_ms) return 0;
    char ver[64];
    int rc = store_version(s, c->s3_out_bucket, PEOPLE_KEY, ver, err);
    if (rc == FR_ENOTFOUND) ver[0] = 0;
    else if (rc) return rc;
    pc->checked = now;
    if (pc->g && !strcmp(ver, pc->ver)) return 0;
    struct gallery *g;
    rc = people_load(s, c, &g, ver, err);
    if (rc) return rc;
    gallery_free(pc->g);
    pc->g = g;
    memcpy(pc->ver, ver, sizeof pc->ver);
    return 0;
}

void people_cache_free(struct people_cache *pc)
{
    gallery_free(pc->g);
    memset(pc, 0, sizeof *pc);
}
