/* api.h: the HTTP API (libmicrohttpd, a small pool of threads; an upload waiting for its result
 * is suspended and holds no thread: waits.h).
 *
 *   POST /               multipart field inputFile: store the photo, queue the job, wait up to
 *                        MAX_WAIT_SECONDS for the result: 200 with it, else 202 {job_id, pending}
 *   GET  /status/{id}    200 result, 202 pending, 404 unknown, 400 malformed id
 *   GET  /health         200 {"status":"ok"} or 503 with the reason
 *   POST /people/{name}, GET /people, DELETE /people/{name}: the gallery (X-Api-Key when set)
 *   GET  /people/{name}/photo  the face thumbnail stored at enrolment (image/jpeg; X-Api-Key)
 *   GET  /, /static/{file}     the web page and its files (web.h); HEAD works as GET everywhere
 *
 * Requests are capped: headers (32 KiB), upload (MAX_FILE_MB), slow clients (timeout). Every
 * error is a JSON body {"status":"error","error":"..."} with a 4xx or 5xx code. */
#ifndef FR_SERVICE_API_H
#define FR_SERVICE_API_H

#include "util/config.h"
#include "util/err.h"

struct api;

/* Starts listening on HOST:PORT. Returns 0, or FR_EIO (cannot listen) / a backend error. */
int api_start(const struct config *c, struct api **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Stops accepting, answers the uploads still waiting 202, closes the connections, frees. NULL
 * does nothing. */
void api_stop(struct api *a);

#endif
