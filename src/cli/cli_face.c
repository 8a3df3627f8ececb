/* cli_face.c: `facerec detect` and `facerec embed`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "vision/image.h"
#include "vision/pipeline.h"

static const char detect_usage[] =
    "usage: facerec detect [--min-face N] [--max-side N] [--thresholds P,R,O] [--min-quality Q]\n"
    "                      IMAGE...\n"
    "       facerec embed  (the same options) IMAGE...\n"
    "\n"
    "Prints one JSON object per image: its size and faces, each with box [x1,y1,x2,y2],\n"
    "score, five landmarks [[x,y] x5] (eyes, nose tip, mouth corners) and quality; `embed`\n"
    "adds each face's 192-value unit embedding. Models come from $FACEREC_MODELS (default\n"
    "./models).\n";

const char *cli_models_dir(void)
{
    const char *dir = getenv("FACEREC_MODELS");
    return dir && *dir ? dir : "models";
}

int cli_detect(int argc, char **argv)
{
    int embed = !strcmp(argv[0], "embed");
    struct recognizer_opts o = RECOGNIZER_OPTS_DEFAULT;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        const char *a = argv[first];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(detect_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--min-face") && first + 1 < argc) {
            o.detect.min_face = atoi(argv[++first]);
        } else if (!strcmp(a, "--max-side") && first + 1 < argc) {
            o.detect.max_side = atoi(argv[++first]);
        } else if (!strcmp(a, "--thresholds") && first + 1 < argc) {
            float *t = o.detect.thresh;
            if (sscanf(argv[++first], "%f,%f,%f", &t[0], &t[1], &t[2]) != 3)
                return cli_usage(argv[0], "--thresholds takes P,R,O, e.g. 0.6,0.7,0.7");
        } else if (!strcmp(a, "--min-quality") && first + 1 < argc) {
            char *end;
            o.min_quality = strtof(argv[++first], &end);
            if (*end || !(o.min_quality >= 0 && o.min_quality <= 1000))
                return cli_usage(argv[0], "--min-quality takes a number from 0 to 1000");
        } else {
            return cli_usage(argv[0], "unknown option or missing value: '%s'", a);
        }
    }
    if (first >= argc) return cli_usage(argv[0], "no IMAGE given");
    char err[FR_ERR_LEN];
    struct recognizer *r = NULL;
    if (recognizer_open(cli_models_dir(), &o, &r, err)) return cli_error("%s", err);
    int status = 0;
    for (int i = first; i < argc; i++) {
        struct image img = {0};
        struct recognition res = {0};
        if (image_load_file(argv[i], NULL, &img, err) || recognizer_run(r, &img, 0, &res, err)) {
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
        for (int k = 0; k < res.n; k++) {
            if (k) buf_append(&b, ",", 1);
            recognition_face_json(&res.faces[k], 0, embed, &b);
        }
        buf_append(&b, "]}\n", 3);
        if (b.err) status = cli_error("%s: output too large", argv[i]);
        else fwrite(b.data, 1, b.len, stdout);
        buf_free(&b);
        recognition_free(&res);
        image_free(&img);
    }
    recognizer_close(r);
    return status;
}
