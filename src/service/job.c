#include "service/job.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "util/text.h"

int job_id_new(char id[JOB_ID_LEN + 1])
{
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return FR_EIO;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(id, JOB_ID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

int job_id_valid(const char *s)
{
    for (int i = 0; i < JOB_ID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return s[JOB_ID_LEN] == 0;
}

void job_filename_sanitize(const char *in, char out[JOB_FILENAME_MAX + 1])
{
    /* last path component, either separator */
    const char *base = in;
    for (const char *p = in; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    while (*base == '.' || *base == ' ')
        base++;
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)base;
    while (*p && n < JOB_FILENAME_MAX) {
        int len = utf8_len(p);
        if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f))) {
            out[n++] = '_';
            p++;
            continue;
        }
        if (n + (size_t)len > JOB_FILENAME_MAX) break;
        memcpy(out + n, p, (size_t)len);
        n += (size_t)len;
        p += len;
    }
    out[n] = 0;
    /* keep a short extension when the name was cut */
    if (*p) {
        const char *dot = strrchr(base, '.');
        size_t elen = dot ? strlen(dot) : 0;
        int ext_ok = dot && elen <= 8;
        for (size_t i = 1; ext_ok && i < elen; i++)
            ext_ok = (dot[i] >= 'a' && dot[i] <= 'z') || (dot[i] >= 'A' && dot[i] <= 'Z') ||
                     (dot[i] >= '0' && dot[i] <= '9');
        if (ext_ok && n > elen) {
            size_t cut = JOB_FILENAME_MAX - elen;
            while (cut > 0 && ((unsigned char)out[cut] & 0xc0) == 0x80) /* character boundary */
                cut--;
            memcpy(out + cut, dot, elen + 1);
        }
    }
    while (n > 0 && out[strlen(out) - 1] == ' ')
        out[strlen(out) - 1] = 0;
    if (!out[0]) snprintf(out, JOB_FILENAME_MAX + 1, "upload");
}

int job_parse_body(const char *body, char id[JOB_ID_LEN + 1], char filename[JOB_FILENAME_MAX + 1])
{
    size_t n = strlen(body);
    if (n < JOB_ID_LEN + 2 || body[JOB_ID_LEN] != '_') return FR_EFORMAT;
    memcpy(id, body, JOB_ID_LEN);
    id[JOB_ID_LEN] = 0;
    if (!job_id_valid(id)) return FR_EFORMAT;
    const char *name = body + JOB_ID_LEN + 1;
    if (strlen(name) > JOB_FILENAME_MAX) return FR_EFORMAT;
    char clean[JOB_FILENAME_MAX + 1];
    job_filename_sanitize(name, clean);
    if (strcmp(clean, name) != 0) return FR_EFORMAT;
    memcpy(filename, clean, strlen(clean) + 1);
    return 0;
}
