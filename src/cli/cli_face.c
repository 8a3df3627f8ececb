/* cli_face.c: `facerec detect` and `facerec embed`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "vision/embed.h"
#include "vision/image.h"
#include "vision/mtcnn.h"

static const char detect_usage[] =
    "usage: facerec detect [--min-face N] [--max-side N] [--thresholds P,R,O] IMAGE...\n"
    "       facerec embed  [--min-face N] [--max-side N] [--thresholds P,R,O] IMAGE...\n"
    "\n"
    "Prints one JSON object per image: its size and faces, each with box [x1,y1,x2,y2],\n"
    "score and five landmarks [[x,y] x5] (eyes, nose tip, mouth corners); `embed` adds each\n"
    "face's 192-value unit embedding. Models come from $FACEREC_MODELS (default ./models).\n";

const char *cli_models_dir(void)
{
    const char *dir = getenv("FACEREC_MODELS");
    return dir && *dir ? dir : "models";
}

/* Appends the JSON of one face (without embedding) to b. */
void cli_face_json(struct buf *b, const struct face_box *f)
{
    buf_printf(b, "{\"box\":[%.1f,%.1f,%.1f,%.1f],\"score\":%.4f,\"landmarks\":[", f->box[0],
               f->box[1], f->box[2], f->box[3], f->score);
    for (int k = 0; k < 5; k++)
        buf_printf(b, "%s[%.1f,%.1f]", k ? "," : "", f->lm[2 * k], f->lm[2 * k + 1]);
    buf_append(b, "]", 1);
}

int cli_detect(int argc, char **argv)
{
    int embed = !strcmp(argv[0], "embed");
    struct mtcnn_opts o = MTCNN_OPTS_DEFAULT;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        const char *a = argv[first];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(detect_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--min-face") && first + 1 < argc) {
            o.min_face = atoi(argv[++first]);
        } else if (!strcmp(a, "--max-side") && first + 1 < argc) {
            o.max_side = atoi(argv[++first]);
        } else if (!strcmp(a, "--thresholds") && first + 1 < argc) {
            if (sscanf(argv[++first], "%f,%f,%f", &o.thresh[0], &o.thresh[1], &o.thresh[2]) != 3)
                return cli_usage(argv[0], "--thresholds takes P,R,O, e.g. 0.6,0.7,0.7");
        } else {
            return cli_usage(argv[0], "unknown option or missing value: '%s'", a);
        }
    }
    if (first >= argc) return cli_usage(argv[0], "no IMAGE given");
    char err[FR_ERR_LEN];
    struct mtcnn *m = NULL;
    struct embedder *e = NULL;
    if (mtcnn_open(cli_models_dir(), NULL, &m, err) ||
        (embed && embed_open(cli_models_dir(), NULL, &e, err))) {
        mtcnn_close(m);
        return cli_error("%s", err);
    }
    int status = 0;
    for (int i = first; i < argc; i++) {
        struct image img = {0};
        struct face_box *faces = NULL;
        int n = 0;
        if (image_load_file(argv[i], NULL, &img, err) || mtcnn_detect(m, &img, &o, &faces, &n, err)) {
            cli_error("%s", err);
            status = 1;
            image_free(&img);
            continue;
        }
        struct buf b;
        buf_init(&b, (size_t)64 << 20);
        buf_append(&b, "{\"file\":", 8);
        buf_json_str(&b, argv[i]);
        buf_printf(&b, ",\"width\":%d,\"height\":%d,\"faces\":[", img.w, img.h);
        for (int k = 0; k < n; k++) {
            if (k) buf_append(&b, ",", 1);
            cli_face_json(&b, &faces[k]);
            if (embed) {
                float v[EMBED_DIM];
                if (embed_face(e, &img, &faces[k], v, err)) {
                    buf_append(&b, ",\"embedding\":null", 17);
                } else {
                    buf_append(&b, ",\"embedding\":[", 14);
                    for (int j = 0; j < EMBED_DIM; j++)
                        buf_printf(&b, "%s%.6f", j ? "," : "", v[j]);
                    buf_append(&b, "]", 1);
                }
            }
            buf_append(&b, "}", 1);
        }
        buf_append(&b, "]}\n", 3);
        if (b.err) status = cli_error("%s: output too large", argv[i]);
        else fwrite(b.data, 1, b.len, stdout);
        buf_free(&b);
        free(faces);
        image_free(&img);
    }
    embed_close(e);
    mtcnn_close(m);
    return status;
}
