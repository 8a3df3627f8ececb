/* web.h: the browser page (web/ in the repository), embedded in the binary at build time by
 * scripts/embed-web.sh, so that the service needs no files and no network to serve it.
 *
 *   GET /                 web/index.html
 *   GET /static/{file}    web/{file}, e.g. /static/app.js
 *
 * Only the embedded names match: no path is ever opened, so "..", "%2F" and the like find
 * nothing. */
#ifndef FR_SERVICE_WEB_H
#define FR_SERVICE_WEB_H

#include <stddef.h>

struct web_file {
    const char *name;          /* as in web/, e.g. "app.js" */
    const unsigned char *data; /* static, never freed */
    size_t len;
};

/* The table the build generates (build/gen/web_files.c). */
extern const struct web_file web_files[];
extern const int web_nfiles;

/* The Content-Security-Policy the page is served with: its own scripts, styles and API only;
 * blob: images for the photos it shows. */
#define WEB_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "        \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The embedded file served at the URL path url ("/" or "/static/{name}"), or NULL when there is
 * none. */
const struct web_file *web_lookup(const char *url);

/* The Content-Type of a file by its extension (text types in UTF-8); never NULL. */
const char *web_content_type(const char *name);

#endif
