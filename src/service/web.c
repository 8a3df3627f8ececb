/* web.c: the page's embedded files, looked up by URL path. */
#include "service/web.h"

#include <string.h>

const struct web_file *web_lookup(const char *url)
{
    const char *name;
    if (!strcmp(url, "/")) name = "index.html";
    else if (!strncmp(url, "/static/", 8)) name = url + 8;
    else return NULL;
    for (int i = 0; i < web_nfiles; i++)
        if (!strcmp(web_files[i].name, name)) return &web_files[i];
    return NULL;
}

const char *web_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (!strcmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}
