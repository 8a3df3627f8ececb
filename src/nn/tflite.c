/* tflite.c: a bounds-checked reader of TFLite FlatBuffers.
 *
 * FlatBuffers in brief: the file starts with a uoffset (u32) to the root table. A table starts
 * with an soffset (i32) back to its vtable: [u16 vtable size][u16 table size][u16 field offsets].
 * A field of offset type (table, vector, string) holds a u32 added to its own position. Vectors and
 * strings start with a u32 element count. Unions take two field slots: a u8 type and an offset. */
#include "nn/tflite.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 256
#define MAX_OPCODES 1024

/* TFLite BuiltinOperator codes we know (schema.fbs) */
enum {
    TFL_ADD = 0,
    TFL_CONV_2D = 3,
    TFL_DEPTHWISE_CONV_2D = 4,
    TFL_FULLY_CONNECTED = 9,
    TFL_MAX_POOL_2D = 17,
    TFL_MUL = 18,
    TFL_RELU = 19,
    TFL_RESHAPE = 22,
    TFL_SOFTMAX = 25,
    TFL_SUB = 41,
    TFL_DIV = 42,
    TFL_EXP = 47,
    TFL_NEG = 59,
    TFL_SUM = 74,
    TFL_REDUCE_MAX = 82,
    TFL_ABS = 101,
};

/* TensorType */
enum { TFL_FLOAT32 = 0, TFL_INT32 = 2 };

struct fb {
    const uint8_t *b;
    size_t n;
    char *err;
};

struct fbt {
    const struct fb *fb;
    size_t pos;    /* table start */
    size_t vt;     /* vtable start */
    size_t vtsize; /* bytes */
    size_t tsize;  /* table size in bytes */
    const char *what;
};

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int bad(const struct fb *fb, const char *what, const char *why)
{
    return fr_fail(fb->err, FR_EFORMAT, "model file: %s: %s", what, why);
}

static int fb_table(const struct fb *fb, size_t pos, const char *what, struct fbt *t)
{
    if (pos > fb->n || fb->n - pos < 4) return bad(fb, what, "table offset out of the file");
    int32_t soff = (int32_t)rd32(fb->b + pos);
    int64_t vt = (int64_t)pos - soff;
    if (vt < 0 || (uint64_t)vt > fb->n - 4) return bad(fb, what, "vtable offset out of the file");
    size_t vtsize = rd16(fb->b + vt), tsize = rd16(fb->b + vt + 2);
    if (vtsize < 4 || (vtsize & 1) || (uint64_t)vt + vtsize > fb->n)
        return bad(fb, what, "vtable size invalid");
    if (tsize < 4 || pos + tsize > fb->n) return bad(fb, what, "table size out of the file");
    *t = (struct fbt){fb, pos, (size_t)vt, vtsize, tsize, what};
    return 0;
}

/* Position of field id with size bytes, or 0 when the field is absent. -1 when invalid. */
static int64_t fbt_field(const struct fbt *t, int id, size_t size)
{
    size_t slot = 4 + 2 * (size_t)id;
    if (slot + 2 > t->vtsize) return 0;
    size_t off = rd16(t->fb->b + t->vt + slot);
    if (off == 0) return 0;
    if (off < 4 || off + size > t->tsize) return -1;
    return (int64_t)(t->pos + off);
}

static int fbt_scalar(const struct fbt *t, int id, size_t size, uint32_t dflt, uint32_t *v)
{
    int64_t p = fbt_field(t, id, size);
    if (p < 0) return bad(t->fb, t->what, "field out of its table");
    if (p == 0) {
        *v = dflt;
        return 0;
    }
    const uint8_t *q = t->fb->b + p;
    *v = size == 1 ? q[0] : size == 2 ? rd16(q) : rd32(q);
    return 0;
}

static int fbt_i32(const struct fbt *t, int id, int32_t dflt, int32_t *v)
{
    uint32_t u = 0;
    int rc = fbt_scalar(t, id, 4, (uint32_t)dflt, &u);
    *v = (int32_t)u;
    return rc;
}

static int fbt_u8(const struct fbt *t, int id, uint8_t dflt, uint8_t *v)
{
    uint32_t u = 0;
    int rc = fbt_scalar(t, id, 1, dflt, &u);
    *v = (uint8_t)u;
    return rc;
}

/* Follows the offset field id. *target = 0 when absent. */
static int fbt_ref(const struct fbt *t, int id, size_t *target)
{
    *target = 0;
    int64_t p = fbt_field(t, id, 4);
    if (p < 0) return bad(t->fb, t->what, "offset field out of its table");
    if (p == 0) {
        *target = 0;
        return 0;
    }
    uint64_t tg = (uint64_t)p + rd32(t->fb->b + p);
    if (tg > t->fb->n - 4) return bad(t->fb, t->what, "offset points out of the file");
    *target = (size_t)tg;
    return 0;
}

/* A vector of elem-byte elements: *start and *count; count 0 when absent. */
static int fbt_vec(const struct fbt *t, int id, size_t elem, size_t *start, size_t *count)
{
    *start = *count = 0;
    size_t tg = 0;
    int rc = fbt_ref(t, id, &tg);
    if (rc) return rc;
    if (tg == 0) {
        *start = *count = 0;
        return 0;
    }
    size_t n = rd32(t->fb->b + tg);
    if (n > (t->fb->n - tg - 4) / elem) return bad(t->fb, t->what, "vector runs past the end");
    *start = tg + 4;
    *count = n;
    return 0;
}

static int fbt_subtable(const struct fbt *t, int id, const char *what, struct fbt *out, int *present)
{
    size_t tg = 0;
    *present = 0;
    int rc = fbt_ref(t, id, &tg);
    if (rc) return rc;
    *present = tg != 0;
    return tg ? fb_table(t->fb, tg, what, out) : 0;
}

/* Element i of a vector of tables that starts at start. */
static int fb_vec_table(const struct fb *fb, size_t start, size_t i, const char *what,
                        struct fbt *out)
{
    size_t p = start + 4 * i;
    uint64_t tg = (uint64_t)p + rd32(fb->b + p);
    if (tg > fb->n) return bad(fb, what, "offset points out of the file");
    return fb_table(fb, (size_t)tg, what, out);
}

/* Copies string field id into a new NUL-terminated string (dflt when absent). */
static int fbt_str(const struct fbt *t, int id, const char *dflt, char **out)
{
    size_t start, n;
    int rc = fbt_vec(t, id, 1, &start, &n);
    if (rc) return rc;
    if (n > MAX_NAME) n = MAX_NAME; /* names are labels only; a long one is cut, not fatal */
    const char *src = start ? (const char *)t->fb->b + start : dflt;
    if (!start) n = strlen(dflt);
    char *s = malloc(n + 1);
    if (!s) return fr_fail(t->fb->err, FR_ENOMEM, "out of memory reading a name");
    for (size_t i = 0; i < n; i++)
        s[i] = (src[i] >= 32 && src[i] < 127) ? src[i] : '?';
    s[n] = 0;
    *out = s;
    return 0;
}

/* Reads an int vector (tensor indices, shapes) of at most max entries. */
static int fbt_ints(const struct fbt *t, int id, int max, int32_t *v, int *count, const char *what)
{
    size_t start, n;
    int rc = fbt_vec(t, id, 4, &start, &n);
    if (rc) return rc;
    if (n > (size_t)max) return bad(t->fb, what, "too many entries");
    for (size_t i = 0; i < n; i++)
        v[i] = (int32_t)rd32(t->fb->b + start + 4 * i);
    *count = (int)n;
    return 0;
}

static int read_padding(const struct fbt *o, int id, enum nn_padding *pad)
{
    uint8_t p;
    int rc = fbt_u8(o, id, 0, &p);
    if (rc) return rc;
    if (p > 1) return bad(o->fb, o->what, "unknown padding");
    *pad = p == 0 ? NN_PAD_SAME : NN_PAD_VALID;
    return 0;
}

static int read_act(const struct fbt *o, int id, enum nn_act *act)
{
    uint8_t a;
    int rc = fbt_u8(o, id, 0, &a);
    if (rc) return rc;
    switch (a) {
    case 0: *act = NN_ACT_NONE; return 0;
    case 1: *act = NN_ACT_RELU; return 0;
    case 2: *act = NN_ACT_RELU_N1_TO_1; return 0;
    case 3: *act = NN_ACT_RELU6; return 0;
    default:
        return fr_fail(o->fb->err, FR_EUNSUPPORTED, "model file: %s: fused activation %u unsupported",
                       o->what, a);
    }
}

static int read_stride(const struct fbt *o, int wid, int hid, int *sw, int *sh)
{
    int32_t w, h;
    int rc = fbt_i32(o, wid, 1, &w);
    if (!rc) rc = fbt_i32(o, hid, 1, &h);
    if (rc) return rc;
    if (w < 1 || h < 1 || w > 64 || h > 64) return bad(o->fb, o->what, "stride out of range");
    *sw = w;
    *sh = h;
    return 0;
}

static int read_dilation(const struct fbt *o, int wid, int hid, int *dw, int *dh)
{
    int32_t w, h;
    int rc = fbt_i32(o, wid, 1, &w);
    if (!rc) rc = fbt_i32(o, hid, 1, &h);
    if (rc) return rc;
    if (w < 1 || h < 1 || w > 64 || h > 64) return bad(o->fb, o->what, "dilation out of range");
    *dw = w;
    *dh = h;
    return 0;
}

/* Fills the node's attributes from its builtin options table (o may be absent: present == 0,
 * then schema defaults apply, which fbt_* do when given a table with no fields). */
static int read_options(const struct fbt *o, struct nn_node *nd)
{
    int rc = 0;
    nd->stride_h = nd->stride_w = nd->dil_h = nd->dil_w = 1;
    nd->depth_mult = 1;
    switch (nd->op) {
    case NN_OP_CONV_2D:
        /* Conv2DOptions: padding, stride_w, stride_h, fused_activation_function, dilation w, h */
        if (!(rc = read_padding(o, 0, &nd->pad)) &&
            !(rc = read_stride(o, 1, 2, &nd->stride_w, &nd->stride_h)) &&
            !(rc = read_act(o, 3, &nd->act)))
            rc = read_dilation(o, 4, 5, &nd->dil_w, &nd->dil_h);
        break;
    case NN_OP_DEPTHWISE_CONV_2D: {
        /* padding, stride_w, stride_h, depth_multiplier, activation, dilation w, h */
        int32_t dm = 1;
        if (!(rc = read_padding(o, 0, &nd->pad)) &&
            !(rc = read_stride(o, 1, 2, &nd->stride_w, &nd->stride_h)) &&
            !(rc = fbt_i32(o, 3, 1, &dm)) && !(rc = read_act(o, 4, &nd->act)))
            rc = read_dilation(o, 5, 6, &nd->dil_w, &nd->dil_h);
        if (!rc && (dm < 0 || dm > 1024)) rc = bad(o->fb, o->what, "depth multiplier out of range");
        nd->depth_mult = dm; /* 0 in older files: derived from shapes */
        break;
    }
    case NN_OP_MAX_POOL_2D: {
        /* Pool2DOptions: padding, stride_w, stride_h, filter_width, filter_height, activation */
        int32_t fw = 1, fh = 1;
        if (!(rc = read_padding(o, 0, &nd->pad)) &&
            !(rc = read_stride(o, 1, 2, &nd->stride_w, &nd->stride_h)) &&
            !(rc = fbt_i32(o, 3, 1, &fw)) && !(rc = fbt_i32(o, 4, 1, &fh)))
            rc = read_act(o, 5, &nd->act);
        if (!rc && (fw < 1 || fh < 1 || fw > 256 || fh > 256))
            rc = bad(o->fb, o->what, "pooling window out of range");
        nd->filter_w = fw;
        nd->filter_h = fh;
        break;
    }
    case NN_OP_FULLY_CONNECTED: {
        /* FullyConnectedOptions: activation, weights_format, keep_num_dims */
        uint8_t wf, keep;
        if (!(rc = read_act(o, 0, &nd->act)) && !(rc = fbt_u8(o, 1, 0, &wf)))
            rc = fbt_u8(o, 2, 0, &keep);
        if (!rc && wf != 0)
            rc = fr_fail(o->fb->err, FR_EUNSUPPORTED, "model file: %s: shuffled weights unsupported",
                         o->what);
        if (!rc && keep)
            rc = fr_fail(o->fb->err, FR_EUNSUPPORTED, "model file: %s: keep_num_dims unsupported",
                         o->what);
        break;
    }
    case NN_OP_ADD:
    case NN_OP_SUB:
    case NN_OP_MUL:
    case NN_OP_DIV: rc = read_act(o, 0, &nd->act); break;
    case NN_OP_REDUCE_MAX:
    case NN_OP_SUM: {
        uint8_t keep;
        rc = fbt_u8(o, 0, 0, &keep);
        nd->keep_dims = keep != 0;
        break;
    }
    case NN_OP_SOFTMAX: {
        uint32_t beta_bits;
        float beta;
        rc = fbt_scalar(o, 0, 4, 0, &beta_bits); /* schema default 0 */
        memcpy(&beta, &beta_bits, 4);
        if (!rc && beta != 1.0f)
            rc = fr_fail(o->fb->err, FR_EUNSUPPORTED, "model file: %s: softmax beta %g unsupported",
                         o->what, (double)beta);
        break;
    }
    case NN_OP_RESHAPE: {
        int32_t v[NN_MAX_DIMS];
        int n = 0;
        rc = fbt_ints(o, 0, NN_MAX_DIMS, v, &n, o->what);
        nd->new_shape.ndim = n;
        for (int i = 0; i < n; i++)
            nd->new_shape.d[i] = v[i];
        break;
    }
    default: break;
    }
    return rc;
}

static int map_opcode(int32_t code, enum nn_op *op)
{
    switch (code) {
    case TFL_ADD: *op = NN_OP_ADD; return 1;
    case TFL_CONV_2D: *op = NN_OP_CONV_2D; return 1;
    case TFL_DEPTHWISE_CONV_2D: *op = NN_OP_DEPTHWISE_CONV_2D; return 1;
    case TFL_FULLY_CONNECTED: *op = NN_OP_FULLY_CONNECTED; return 1;
    case TFL_MAX_POOL_2D: *op = NN_OP_MAX_POOL_2D; return 1;
    case TFL_MUL: *op = NN_OP_MUL; return 1;
    case TFL_RELU: *op = NN_OP_RELU; return 1;
    case TFL_RESHAPE: *op = NN_OP_RESHAPE; return 1;
    case TFL_SOFTMAX: *op = NN_OP_SOFTMAX; return 1;
    case TFL_SUB: *op = NN_OP_SUB; return 1;
    case TFL_DIV: *op = NN_OP_DIV; return 1;
    case TFL_EXP: *op = NN_OP_EXP; return 1;
    case TFL_NEG: *op = NN_OP_NEG; return 1;
    case TFL_SUM: *op = NN_OP_SUM; return 1;
    case TFL_REDUCE_MAX: *op = NN_OP_REDUCE_MAX; return 1;
    case TFL_ABS: *op = NN_OP_ABS; return 1;
    default: return 0;
    }
}

/* Names of a few common unsupported builtins, so the error names the op. */
static const char *tfl_name(int32_t code)
{
    switch (code) {
    case 1: return "AVERAGE_POOL_2D";
    case 2: return "CONCATENATION";
    case 14: return "LOGISTIC";
    case 21: return "RELU6";
    case 23: return "RESIZE_BILINEAR";
    case 28: return "TANH";
    case 32: return "CUSTOM";
    case 34: return "PAD";
    case 39: return "TRANSPOSE";
    case 40: return "MEAN";
    case 54: return "PRELU";
    case 98: return "LEAKY_RELU";
    default: return "builtin";
    }
}

struct opcode {
    int ok;
    enum nn_op op;
    int32_t code;
};

static int read_opcodes(const struct fb *fb, const struct fbt *model, struct opcode **out, size_t *nout)
{
    size_t start, n;
    int rc = fbt_vec(model, 1, 4, &start, &n);
    if (rc) return rc;
    if (n == 0) return bad(fb, "model", "no operator codes");
    if (n > MAX_OPCODES) return bad(fb, "model", "too many operator codes");
    struct opcode *oc = calloc(n, sizeof *oc);
    if (!oc) return fr_fail(fb->err, FR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        struct fbt t;
        uint8_t dep;
        int32_t code;
        if ((rc = fb_vec_table(fb, start, i, "operator code", &t))) break;
        /* OperatorCode: deprecated_builtin_code (byte), custom_code, version, builtin_code */
        if ((rc = fbt_u8(&t, 0, 0, &dep)) || (rc = fbt_i32(&t, 3, 0, &code))) break;
        oc[i].code = code > (int32_t)dep ? code : (int32_t)dep;
        oc[i].ok = map_opcode(oc[i].code, &oc[i].op);
    }
    if (rc) {
        free(oc);
        return rc;
    }
    *out = oc;
    *nout = n;
    return 0;
}

static int read_tensor(const struct fb *fb, size_t bstart,
                       size_t nbuf, const struct fbt *t, struct nn_graph *g, int index)
{
    char what[64];
    snprintf(what, sizeof what, "tensor %d", index);
    int32_t dims[NN_MAX_DIMS + 1];
    int ndim = 0, rc;
    uint8_t type;
    uint32_t bidx;
    char *name = NULL;
    if ((rc = fbt_ints(t, 0, NN_MAX_DIMS, dims, &ndim, what))) return rc;
    if ((rc = fbt_u8(t, 1, 0, &type)) || (rc = fbt_scalar(t, 2, 4, 0, &bidx))) return rc;
    static const char *const type_names[] = {"FLOAT32", "FLOAT16", "INT32", "UINT8",
                                             "INT64",   "STRING",  "BOOL",  "INT16",
                                             "COMPLEX64", "INT8",  "FLOAT64"};
    if (type != TFL_FLOAT32 && type != TFL_INT32)
        return fr_fail(fb->err, FR_EUNSUPPORTED,
                       "model file: %s: tensor type %s unsupported (float32 and int32 only)", what,
                       type < sizeof type_names / sizeof *type_names ? type_names[type] : "unknown");
    struct nn_shape s = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) {
        /* -1 may appear for a dynamic batch; everything else must be a sane size */
        if (dims[i] < -1 || dims[i] == 0 || dims[i] > NN_MAX_DIM) return bad(fb, what, "dimension out of range");
        s.d[i] = dims[i] == -1 ? 1 : dims[i];
    }
    void *data = NULL;
    size_t nbytes = 0;
    if (bidx >= nbuf) return bad(fb, what, "buffer index out of range");
    if (bidx > 0) {
        struct fbt b;
        size_t dstart, dn;
        uint32_t lo = 0;
        if ((rc = fb_vec_table(fb, bstart, bidx, "buffer", &b))) return rc;
        if ((rc = fbt_vec(&b, 0, 1, &dstart, &dn))) return rc;
        if ((rc = fbt_scalar(&b, 1, 4, 0, &lo))) return rc; /* low half of a u64 offset */
        if (lo != 0)
            return fr_fail(fb->err, FR_EUNSUPPORTED,
                           "model file: %s: data outside the FlatBuffer unsupported", what);
        if (dn > 0) {
            int64_t count = nn_shape_count(&s);
            for (int i = 0; i < ndim; i++)
                if (dims[i] < 0) return bad(fb, what, "constant with a dynamic dimension");
            if ((uint64_t)count * 4 != dn) return bad(fb, what, "buffer size does not match shape");
            data = nn_alloc_aligned(dn);
            if (!data) return fr_fail(fb->err, FR_ENOMEM, "out of memory for %s", what);
            memcpy(data, fb->b + dstart, dn);
            nbytes = dn;
            if (type == TFL_FLOAT32) {
                const float *f = data;
                for (size_t i = 0; i < dn / 4; i++)
                    if (!isfinite(f[i])) {
                        free(data);
                        return bad(fb, what, "weights contain NaN or infinity");
                    }
            }
        }
    }
    if ((rc = fbt_str(t, 3, "", &name))) {
        free(data);
        return rc;
    }
    int idx = nn_graph_add_tensor(g, name, type == TFL_FLOAT32 ? NN_F32 : NN_I32, &s, data, nbytes);
    free(name);
    if (idx < 0) {
        free(data);
        return fr_fail(fb->err, idx, "model file: cannot add %s", what);
    }
    return 0;
}

static int read_operator(const struct fb *fb, const struct fbt *t, const struct opcode *oc,
                         size_t noc, int index, int ntensors, struct nn_node *nd)
{
    char what[64];
    snprintf(what, sizeof what, "operator %d", index);
    uint32_t opi;
    int rc;
    if ((rc = fbt_scalar(t, 0, 4, 0, &opi))) return rc;
    if (opi >= noc) return bad(fb, what, "opcode index out of range");
    if (!oc[opi].ok)
        return fr_fail(fb->err, FR_EUNSUPPORTED, "model file: %s: op %s (code %d) unsupported",
                       what, tfl_name(oc[opi].code), (int)oc[opi].code);
    memset(nd, 0, sizeof *nd);
    nd->op = oc[opi].op;
    int32_t ins[NN_MAX_NODE_INPUTS + 1], outs[2];
    int nin = 0, nout = 0;
    if ((rc = fbt_ints(t, 1, NN_MAX_NODE_INPUTS, ins, &nin, what))) return rc;
    if ((rc = fbt_ints(t, 2, 1, outs, &nout, what))) return rc;
    if (nout != 1) return bad(fb, what, "expected exactly one output");
    for (int i = 0; i < nin; i++) {
        if (ins[i] < -1 || ins[i] >= ntensors) return bad(fb, what, "input tensor index out of range");
        nd->in[i] = ins[i];
    }
    for (int i = nin; i < NN_MAX_NODE_INPUTS; i++)
        nd->in[i] = -1;
    if (outs[0] < 0 || outs[0] >= ntensors) return bad(fb, what, "output tensor index out of range");
    nd->nin = nin;
    nd->out = outs[0];

    uint8_t otype;
    struct fbt opts;
    int present = 0;
    if ((rc = fbt_u8(t, 3, 0, &otype))) return rc;
    if ((rc = fbt_subtable(t, 4, what, &opts, &present))) return rc;
    if (present) return read_options(&opts, nd);
    /* No options table: every field takes its schema default, read from an empty table. */
    static const uint8_t blank[8] = {4, 0, 4, 0, 4, 0, 0, 0};
    const struct fb fb_blank = {blank, sizeof blank, fb->err};
    opts = (struct fbt){&fb_blank, 4, 0, 4, 4, what};
    return read_options(&opts, nd);
}

int nn_tflite_parse(const uint8_t *buf, size_t len, struct nn_graph **out, char err[FR_ERR_LEN])
{
    struct fb fb = {buf, len, err};
    struct opcode *oc = NULL;
    size_t noc = 0;
    struct nn_graph *g = NULL;
    int rc;
    *out = NULL;
    if (len > NN_TFLITE_MAX_BYTES)
        return fr_fail(err, FR_ETOOBIG, "model file: %zu bytes is over the %u-byte cap", len,
                       NN_TFLITE_MAX_BYTES);
    if (len < 16) return bad(&fb, "header", "file too short to be a TFLite model");
    if (memcmp(buf + 4, "TFL3", 4) != 0)
        return bad(&fb, "header", "not a TFLite model (no TFL3 identifier)");

    struct fbt model, sub;
    if ((rc = fb_table(&fb, rd32(buf), "model", &model))) return rc;
    uint32_t version;
    if ((rc = fbt_scalar(&model, 0, 4, 0, &version))) return rc;
    if (version != 3)
        return fr_fail(err, FR_EUNSUPPORTED, "model file: schema version %u unsupported (3 only)",
                       version);
    if ((rc = read_opcodes(&fb, &model, &oc, &noc))) return rc;

    size_t sstart, nsub, bstart, nbuf;
    if ((rc = fbt_vec(&model, 2, 4, &sstart, &nsub))) goto done;
    if (nsub != 1) {
        rc = fr_fail(err, nsub ? FR_EUNSUPPORTED : FR_EFORMAT,
                     "model file: %zu subgraphs (exactly one supported)", nsub);
        goto done;
    }
    if ((rc = fbt_vec(&model, 4, 4, &bstart, &nbuf))) goto done;
    if ((rc = fb_vec_table(&fb, sstart, 0, "subgraph", &sub))) goto done;

    g = calloc(1, sizeof *g);
    if (!g) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    size_t tstart, nt;
    if ((rc = fbt_vec(&sub, 0, 4, &tstart, &nt))) goto done;
    if (nt == 0 || nt > NN_MAX_TENSORS) {
        rc = bad(&fb, "subgraph", nt ? "too many tensors" : "no tensors");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) {
        struct fbt t;
        if ((rc = fb_vec_table(&fb, tstart, i, "tensor", &t))) goto done;
        if ((rc = read_tensor(&fb, bstart, nbuf, &t, g, (int)i))) goto done;
    }
    int32_t io[NN_MAX_IO];
    if ((rc = fbt_ints(&sub, 1, NN_MAX_IO, io, &g->ninputs, "subgraph inputs"))) goto done;
    for (int i = 0; i < g->ninputs; i++)
        g->inputs[i] = io[i];
    if ((rc = fbt_ints(&sub, 2, NN_MAX_IO, io, &g->noutputs, "subgraph outputs"))) goto done;
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i] = io[i];
    if (g->ninputs != 1 || g->noutputs < 1) {
        rc = fr_fail(err, FR_EUNSUPPORTED, "model file: %d inputs and %d outputs (one input and at least one output supported)",
                     g->ninputs, g->noutputs);
        goto done;
    }
    size_t ostart, no;
    if ((rc = fbt_vec(&sub, 3, 4, &ostart, &no))) goto done;
    if (no == 0 || no > NN_MAX_NODES) {
        rc = bad(&fb, "subgraph", no ? "too many operators" : "no operators");
        goto done;
    }
    g->nodes = calloc(no, sizeof *g->nodes);
    if (!g->nodes) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < no; i++) {
        struct fbt t;
        if ((rc = fb_vec_table(&fb, ostart, i, "operator", &t))) goto done;
        if ((rc = read_operator(&fb, &t, oc, noc, (int)i, g->ntensors, &g->nodes[i]))) goto done;
        g->nnodes++;
    }
    /* Structure and shapes at the declared input size: catches inconsistent weights now. */
    struct nn_shape *shapes = calloc((size_t)g->ntensors, sizeof *shapes);
    if (!shapes) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    rc = nn_graph_shapes(g, NULL, shapes, err);
    free(shapes);
done:
    free(oc);
    if (rc) {
        nn_graph_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int nn_tflite_load(const char *path, struct nn_graph **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return fr_fail(err, FR_EIO, "%s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = 0;
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = fr_fail(err, FR_EIO, "%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    long sz = ftell(f);
    if (sz < 0) {
        rc = fr_fail(err, FR_EIO, "%s: cannot tell size", path);
        goto done;
    }
    if ((unsigned long)sz > NN_TFLITE_MAX_BYTES) {
        rc = fr_fail(err, FR_ETOOBIG, "%s: %ld bytes is over the %u-byte model cap", path, sz,
                     NN_TFLITE_MAX_BYTES);
        goto done;
    }
    rewind(f);
    len = (size_t)sz;
    buf = malloc(len ? len : 1);
    if (!buf) {
        rc = fr_fail(err, FR_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(buf, 1, len, f) != len) {
        rc = fr_fail(err, FR_EIO, "%s: short read", path);
        goto done;
    }
    char inner[FR_ERR_LEN];
    rc = nn_tflite_parse(buf, len, out, inner);
    if (rc) fr_fail(err, rc, "%s: %s", path, inner);
done:
    free(buf);
    fclose(f);
    return rc;
}
