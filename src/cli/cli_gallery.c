/* cli_gallery.c: `facerec enroll` and `facerec identify`. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "vision/gallery.h"
#include "vision/pipeline.h"

static const char enroll_usage[] =
    "usage: facerec enroll --gallery FILE DIR\n"
    "\n"
    "Enrols DIR/<person name>/<photos>: one person per folder, the largest face of each photo.\n"
    "Photos with no face are reported and skipped; photos with several faces are reported and\n"
    "the largest face used. FILE is created or extended, and written atomically.\n";

static const char identify_usage[] =
    "usage: facerec identify --gallery FILE [--threshold T] IMAGE...\n"
    "\n"
    "Prints one JSON object per image: file, faces (box, score, landmarks, name, similarity)\n"
    "and result: the largest face's name, Unknown, or No face. Default threshold 0.45.\n";

static int open_recognizer(struct recognizer **r)
{
    char err[FR_ERR_LEN];
    if (recognizer_open(cli_models_dir(), NULL, r, err)) return cli_error("%s", err);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of dir that are directories (want_dir) or regular files. */
static int list_dir(const char *dir, int want_dir, char ***out, int *n)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **v = NULL;
    int count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        v[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)count, sizeof *v, by_name);
    *out = v;
    *n = count;
    return 0;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int cli_enroll(int argc, char **argv)
{
    const char *file = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(enroll_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--gallery") && i + 1 < argc) file = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else return cli_usage("enroll", "unexpected argument '%s'", argv[i]);
    }
    if (!file || !dir) return cli_usage("enroll", "--gallery FILE and DIR are both required");
    char err[FR_ERR_LEN];
    struct gallery *g = NULL;
    int rc = gallery_load(file, &g, err);
    if (rc == FR_ENOTFOUND) rc = gallery_new(&g);
    if (rc) return cli_error("%s", err);
    char **people;
    int npeople;
    if (list_dir(dir, 1, &people, &npeople)) {
        gallery_free(g);
        return cli_error("%s: cannot read the folder", dir);
    }
    struct recognizer *r;
    if (open_recognizer(&r)) {
        gallery_free(g);
        free_list(people, npeople);
        return 1;
    }
    int tty = isatty(STDERR_FILENO), enrolled = 0, skipped = 0, photos = 0, status = 0;
    for (int p = 0; p < npeople; p++) {
        if (!gallery_name_valid(people[p])) {
            fprintf(stderr, "facerec: %s/%s: not a usable person name; skipped\n", dir, people[p]);
            continue;
        }
        char pdir[4096];
        snprintf(pdir, sizeof pdir, "%s/%s", dir, people[p]);
        char **files;
        int nfiles;
        if (list_dir(pdir, 0, &files, &nfiles)) continue;
        for (int f = 0; f < nfiles; f++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", pdir, files[f]);
            photos++;
            if (tty) fprintf(stderr, "\renrolling: person %d/%d, %d photos", p + 1, npeople, photos);
            struct image img = {0};
            struct recognition res = {0};
            if (image_load_file(path, NULL, &img, err) || recognizer_run(r, &img, 0, &res, err)) {
                fprintf(stderr, "%sfacerec: %s\n", tty ? "\n" : "", err);
                skipped++;
            } else if (res.largest < 0) {
                fprintf(stderr, "%sfacerec: %s: no face found; skipped\n", tty ? "\n" : "", path);
                skipped++;
            } else {
                if (res.n > 1)
                    fprintf(stderr, "%sfacerec: %s: %d faces; enrolled the largest\n",
                            tty ? "\n" : "", path, res.n);
                if (gallery_add(g, people[p], res.faces[res.largest].emb, err)) {
                    fprintf(stderr, "facerec: %s: %s\n", path, err);
                    skipped++;
                } else {
                    enrolled++;
                }
            }
            recognition_free(&res);
            image_free(&img);
        }
        free_list(files, nfiles);
    }
    if (tty) fputc('\n', stderr);
    if (gallery_save(g, file, err)) status = cli_error("%s", err);
    else
        printf("enrolled %d photos of %d people (%d skipped); %s now has %d people, %zu examples\n",
               enrolled, npeople, skipped, file, gallery_people(g), gallery_examples(g));
    recognizer_close(r);
    gallery_free(g);
    free_list(people, npeople);
    return status;
}

int cli_identify(int argc, char **argv)
{
    const char *file = NULL;
    float threshold = RECOGNIZER_THRESHOLD_DEFAULT;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "--help") || !strcmp(argv[first], "-h")) {
            fputs(identify_usage, stdout);
            return 0;
        } else if (!strcmp(argv[first], "--gallery") && first + 1 < argc) file = argv[++first];
        else if (!strcmp(argv[first], "--threshold") && first + 1 < argc) threshold = strtof(argv[++first], NULL);
        else return cli_usage("identify", "unknown option or missing value: '%s'", argv[first]);
    }
    if (!file || first >= argc) return cli_usage("identify", "--gallery FILE and an IMAGE are required");
    if (!(threshold >= -1 && threshold <= 1)) return cli_usage("identify", "--threshold must be in -1..1");
    char err[FR_ERR_LEN];
    struct gallery *g;
    if (gallery_load(file, &g, err)) return cli_error("%s", err);
    struct recognizer *r;
    if (open_recognizer(&r)) {
        gallery_free(g);
        return 1;
    }
    int status = 0;
    for (int i = first; i < argc; i++) {
        struct image img = {0};
        struct recognition res = {0};
        if (image_load_file(argv[i], NULL, &img, err) || recognizer_run(r, &img, 0, &res, err)) {
            status = cli_error("%s", err);
            image_free(&img);
            continue;
        }
        recognition_match(&res, g, threshold);
        struct buf b;
        buf_init(&b, (size_t)16 << 20);
        buf_append(&b, "{\"file\":", 8);
        buf_json_str(&b, argv[i]);
        buf_append(&b, ",", 1);
        recognition_json(&res, &b);
        buf_append(&b, "}\n", 2);
        if (!b.err) fwrite(b.data, 1, b.len, stdout);
        buf_free(&b);
        recognition_free(&res);
        image_free(&img);
    }
    recognizer_close(r);
    gallery_free(g);
    return status;
}
