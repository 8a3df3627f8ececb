/* text.h: small helpers on text and time shared across modules. */
#ifndef FR_UTIL_TEXT_H
#define FR_UTIL_TEXT_H

/* Length (1..4) of the valid UTF-8 sequence at s, or 0 when it is invalid (overlong forms and
 * surrogates included). Never reads past a NUL byte. */
int utf8_len(const unsigned char *s);

/* CLOCK_MONOTONIC in milliseconds. */
double now_ms(void);

/* CLOCK_REALTIME in whole milliseconds since the epoch (timestamps shared between processes). */
long long wall_ms(void);

#endif
