/* log.h: one line per event on stderr: time, process, level, the job id when there is one, and
 * the message. Only the service loops log; library modules return errors instead. */
#ifndef FR_SERVICE_LOG_H
#define FR_SERVICE_LOG_H

#include "util/err.h"

/* job may be NULL. */
void log_event(const char *level, const char *job, const char *fmt, ...) FR_PRINTF(3, 4);

#define log_info(job, ...) log_event("info", job, __VA_ARGS__)
#define log_warn(job, ...) log_event("warn", job, __VA_ARGS__)
#define log_error(job, ...) log_event("error", job, __VA_ARGS__)

#endif
