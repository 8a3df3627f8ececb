/* plan.c: cutting a graph into XNNPACK segments and own kernels, and running the pieces. */
#include "nn/plan.h"

#include <stdlib.h>
#include <string.h>

#include "nn/kern.h"
#include "nn/xnn.h"

/* Where a tensor crossing steps lives. */
enum { SLOT_NONE = -1, SLOT_INPUT = -2, SLOT_OUTPUT0 = -100 }; /* output i: SLOT_OUTPUT0 - i */

struct step {
    struct nn_xnn *xnn;   /* a segment, or */
    struct nn_kern *kern; /* an own kernel */
    int *ext, next;       /* tensors the step reads then writes (segment: in XNNPACK's order) */
    int kin;              /* kernel: how many of them it reads */
    void **ptrs;          /* their memory for this run */
};

struct nn_plan {
    const struct nn_graph *g;
    pthreadpool_t pool; /* the kernels' (not owned) */
    struct step *steps;
    int nsteps;
    int *slot;    /* per tensor: a buffer index, SLOT_INPUT, an output, or SLOT_NONE */
    float **bufs; /* buffers for tensors between steps */
    int nbufs;
};

void nn_plan_free(struct nn_plan *p)
{
    if (!p) return;
    for (int s = 0; s < p->nsteps; s++) {
        nn_xnn_free(p->steps[s].xnn);
        nn_kern_free(p->steps[s].kern);
        free(p->steps[s].ext);
        free(p->steps[s].ptrs);
    }
    free(p->steps);
    for (int b = 0; b < p->nbufs; b++)
        free(p->bufs[b]);
    free(p->bufs);
    free(p->slot);
    free(p);
}

static int graph_output(const struct nn_graph *g, int t)
{
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == t) return i;
    return -1;
}

/* Working state while planning. */
struct build {
    const struct nn_graph *g;
    const struct nn_shape *shapes;
    int *step_of;             /* per node: its step, or -1 (an elided reshape) */
    int *producer;            /* per tensor: the step writing it, -1 for the input and constants */
    int *last;                /* per tensor: the last step reading it */
    int *readers;             /* per tensor: node inputs and graph outputs reading it */
    const int *slot;          /* per tensor: as in struct nn_plan */
    struct nn_kern **kern_of; /* per step: its kernel, or NULL for a segment */
    int *time;          /* per node: its place in execution order (a kernel's nodes share one) */
    int *tprod, *tlast; /* per tensor: when it is written, when last read (-1: never) */
    struct nn_kern **kern_at;     /* per node: the kernel that starts there, while planning */
    int *kern_nodes, *kern_count; /* per node: that kernel's nodes (NN_KERN_MAX_NODES each) */
};

/* The tensors step s reads from elsewhere and writes for elsewhere, into ext (inputs first). */
static int step_io(const struct build *b, int s, int *ext, int *nin, int *nout)
{
    const struct nn_graph *g = b->g;
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < g->nnodes; k++) {
            if (b->step_of[k] != s) continue;
            const struct nn_node *nd = &g->nodes[k];
            if (pass == 0) {
                for (int i = 0; i < nd->nin; i++) {
                    int t = nd->in[i];
                    if (t < 0 || g->tensors[t].data || b->producer[t] == s) continue;
                    int dup = 0;
                    for (int j = 0; j < n; j++)
                        dup |= ext[j] == t;
                    if (!dup) ext[n++] = t;
                }
            } else {
                int t = nd->out;
                if (b->slot[t] != SLOT_NONE) ext[n++] = t;
            }
        }
        if (pass == 0) *nin = n;
    }
    *nout = n - *nin;
    return n;
}

int nn_plan_build(const struct nn_graph *g, const struct nn_shape *shapes, pthreadpool_t pool,
                  int kernels, struct nn_plan **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    if (g->ninputs != 1) return fr_fail(err, FR_EUNSUPPORTED, "XNNPACK path: one input only");
    int T = g->ntensors, N = g->nnodes, rc = 0;
    struct nn_plan *p = calloc(1, sizeof *p);
    struct build b = {.g = g,
                      .shapes = shapes,
                      .step_of = malloc((size_t)N * sizeof(int)),
                      .producer = malloc((size_t)T * sizeof(int)),
                      .last = malloc((size_t)T * sizeof(int)),
                      .readers = calloc((size_t)T, sizeof(int)),
                      .kern_of = calloc((size_t)N, sizeof(struct nn_kern *)),
                      .time = calloc((size_t)N, sizeof(int)),
                      .tprod = malloc((size_t)T * sizeof(int)),
                      .tlast = malloc((size_t)T * sizeof(int)),
                      .kern_at = calloc((size_t)N, sizeof(struct nn_kern *)),
                      .kern_nodes = calloc((size_t)N * NN_KERN_MAX_NODES, sizeof(int)),
                      .kern_count = calloc((size_t)N, sizeof(int))};
    char *taken = calloc((size_t)N + 1, 1);
    int *ext = malloc(((size_t)T + 1) * sizeof(int)), *seg = malloc(((size_t)N + 1) * sizeof(int));
    size_t *cap = calloc((size_t)T + 1, sizeof(size_t));
    int *buf_free = calloc((size_t)T + 1, sizeof(int));
    if (!p || !b.step_of || !b.producer || !b.last || !b.readers || !b.kern_of || !b.time ||
        !b.tprod || !b.tlast || !b.kern_at || !b.kern_nodes || !b.kern_count || !taken || !ext ||
        !seg || !cap || !buf_free) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    p->g = g;
    p->pool = pool;
    for (int i = 0; i < g->noutputs; i++) {
        int t = g->outputs[i];
        if (t == g->inputs[0] || graph_output(g, t) != i) {
            rc = fr_fail(err, FR_EUNSUPPORTED, "XNNPACK path: output %d is the input or repeated",
                         i);
            goto done;
        }
    }
    for (int n = 0; n < N; n++)
        for (int i = 0; i < g->nodes[n].nin; i++)
            if (g->nodes[n].in[i] >= 0) b.readers[g->nodes[n].in[i]]++;
    for (int i = 0; i < g->noutputs; i++)
        b.readers[g->outputs[i]]++;
    p->slot = malloc((size_t)T * sizeof(int));
    b.slot = p->slot;
    if (!p->slot) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < T; t++)
        p->slot[t] = SLOT_NONE, b.producer[t] = -1, b.last[t] = -1;
    p->slot[g->inputs[0]] = SLOT_INPUT;
    for (int i = 0; i < g->noutputs; i++)
        p->slot[g->outputs[i]] = SLOT_OUTPUT0 - i;

    /* a reshape that yields a graph output from a computed tensor read nowhere else: the
     * producer writes the output's memory (same bytes, other shape) */
    for (int n = 0; n < N; n++) {
        const struct nn_node *nd = &g->nodes[n];
        int o = graph_output(g, nd->out), x = nd->in[0];
        if (nd->op == NN_OP_RESHAPE && o >= 0 && p->slot[x] == SLOT_NONE && b.readers[x] == 1 &&
            !g->tensors[x].data) {
            p->slot[x] = p->slot[nd->out];
            taken[n] = 2;
        }
    }

    /* steps: own kernels where they claim nodes, XNNPACK segments for the runs between */
    /* first the kernels, in node order (one may take a node before its own, such as the
     * PReLU that writes a depthwise input), then steps in node order: a kernel where its first
     * node was, XNNPACK segments for the runs between */
    int use_kern = (kernels & NN_PLAN_KERNELS) && nn_kern_available(), ns = 0, open = -1;
    int parts = pool ? (int)pthreadpool_get_threads_count(pool) : 1;
    for (int n = 0; n < N && use_kern; n++) {
        if (taken[n]) continue;
        int c = nn_kern_claim(g, shapes, b.readers, taken, n, kernels & NN_PLAN_BF16, &b.kern_at[n],
                              b.kern_nodes + (size_t)n * NN_KERN_MAX_NODES, &b.kern_count[n]);
        if (c > 0 && nn_kern_set_parts(b.kern_at[n], parts)) c = FR_ENOMEM;
        if (c < 0) {
            rc = fr_fail(err, c, "out of memory");
            goto done;
        }
        for (int i = 0; i < b.kern_count[n]; i++)
            taken[b.kern_nodes[(size_t)n * NN_KERN_MAX_NODES + i]] = 1;
    }
    for (int n = 0; n < N; n++) {
        if (taken[n] == 2) {
            b.step_of[n] = -1;
        } else if (b.kern_at[n]) {
            b.kern_of[ns] = b.kern_at[n];
            b.kern_at[n] = NULL;
            for (int i = 0; i < b.kern_count[n]; i++)
                b.step_of[b.kern_nodes[(size_t)n * NN_KERN_MAX_NODES + i]] = ns;
            ns++, open = -1;
        } else if (!taken[n]) {
            if (open < 0) open = ns++;
            b.step_of[n] = open;
        }
    }
    for (int n = 0; n < N; n++)
        if (b.step_of[n] >= 0) b.producer[g->nodes[n].out] = b.step_of[n];
    for (int n = 0; n < N; n++)
        for (int i = 0; i < g->nodes[n].nin; i++) {
            int t = g->nodes[n].in[i];
            if (t >= 0 && b.step_of[n] > b.last[t]) b.last[t] = b.step_of[n];
        }
    p->steps = calloc((size_t)ns, sizeof *p->steps);
    if (!p->steps) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    p->nsteps = ns;

    /* plan memory: for each tensor written by one step and read by a later one, and, when there
     * are kernels, for every activation between XNNPACK nodes too, so that all steps share one
     * pool of buffers rather than each runtime keeping its own arena. Buffers are handed out in
     * execution order and reused after their tensor's last reader (the free buffer closest in
     * size, grown to the largest tensor it holds). */
    int clock = 0, with_kernels = 0;
    for (int s = 0; s < ns; s++) {
        with_kernels |= b.kern_of[s] != NULL;
        for (int n = 0; n < N; n++)
            if (b.step_of[n] == s) b.time[n] = b.kern_of[s] ? clock : clock++;
        if (b.kern_of[s]) clock++;
    }
    for (int t = 0; t < T; t++)
        b.tprod[t] = b.tlast[t] = -1;
    for (int n = 0; n < N; n++) {
        if (b.step_of[n] < 0) continue;
        b.tprod[g->nodes[n].out] = b.time[n];
        for (int i = 0; i < g->nodes[n].nin; i++) {
            int t = g->nodes[n].in[i];
            if (t >= 0 && b.time[n] > b.tlast[t]) b.tlast[t] = b.time[n];
        }
    }
    for (int now = 0; now < clock; now++) {
        for (int t = 0; t < T; t++) {
            if (b.tprod[t] != now || p->slot[t] != SLOT_NONE || b.tlast[t] < 0) continue;
            int s = b.producer[t];
            if (!(b.last[t] > s || (with_kernels && !b.kern_of[s]))) continue;
            size_t need = (size_t)nn_shape_count(&shapes[t]) * sizeof(float);
            int pick = -1;
            for (int k = 0; k < p->nbufs; k++)
                if (buf_free[k] &&
                    (pick < 0 || (cap[k] >= need ? cap[pick] < need || cap[k] < cap[pick]
                                                 : cap[pick] < need && cap[k] > cap[pick])))
                    pick = k;
            if (pick < 0) pick = p->nbufs++;
            if (cap[pick] < need) cap[pick] = need;
            buf_free[pick] = 0;
            p->slot[t] = pick;
        }
        for (int t = 0; t < T; t++) /* release what was read for the last time */
            if (p->slot[t] >= 0 && b.tlast[t] == now) buf_free[p->slot[t]] = 1;
    }
    for (int s = 0; s < ns; s++) {
        int nin = 0, nout = 0, n = step_io(&b, s, ext, &nin, &nout);
        struct step *st = &p->steps[s];
        st->next = n;
        /* room for a kernel's own list too: up to 2 inputs (one may be listed twice, as input
         * and residual) and 2 outputs */
        st->ext = malloc((size_t)(n + 4) * sizeof(int));
        st->ptrs = calloc((size_t)(n + 4), sizeof(void *));
        if (!st->ext || !st->ptrs) {
            rc = fr_fail(err, FR_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(st->ext, ext, (size_t)n * sizeof(int));
        if (b.kern_of[s]) {
            st->kern = b.kern_of[s];
            b.kern_of[s] = NULL;
            /* order the kernel's tensors as it takes them: inputs, then its outputs */
            int outs[2], no = nn_kern_outputs(st->kern, outs);
            st->kin = nn_kern_inputs(st->kern, st->ext);
            for (int i = 0; i < no; i++)
                st->ext[st->kin + i] = outs[i];
            st->next = st->kin + no;
            for (int i = 0; i < st->next; i++)
                if (p->slot[st->ext[i]] == SLOT_NONE) {
                    rc = fr_fail(err, FR_EBACKEND, "plan: kernel tensor %d has no memory",
                                 st->ext[i]);
                    goto done;
                }
        } else {
            int cnt = 0;
            for (int k = 0; k < N; k++)
                if (b.step_of[k] == s) seg[cnt++] = k;
            rc = nn_xnn_build(g, shapes, seg, cnt, ext, nin, nout, pool, &st->xnn, err);
            if (rc) goto done;
        }
    }
    p->bufs = calloc((size_t)(p->nbufs ? p->nbufs : 1), sizeof *p->bufs);
    if (!p->bufs) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < p->nbufs; k++)
        if (!(p->bufs[k] = nn_alloc_aligned(cap[k]))) {
            rc = fr_fail(err, FR_ENOMEM, "out of memory for a %zu-byte buffer", cap[k]);
            goto done;
        }
done:
    for (int s = 0; s < N; s++) {
        if (b.kern_of) nn_kern_free(b.kern_of[s]);
        if (b.kern_at) nn_kern_free(b.kern_at[s]);
    }
    free(b.step_of), free(b.producer), free(b.last), free(b.readers), free(b.kern_of);
    free(b.time), free(b.tprod), free(b.tlast), free(b.kern_at), free(b.kern_nodes);
    free(b.kern_count);
    free(taken), free(ext), free(seg), free(cap), free(buf_free);
    if (rc) {
        nn_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int nn_plan_streams(const struct nn_plan *p)
{
    return p->nsteps == 1 && p->steps[0].kern && p->nbufs == 0;
}

int nn_plan_run(struct nn_plan *p, const float *input, float *const *outs, char err[FR_ERR_LEN])
{
    for (int s = 0; s < p->nsteps; s++) {
        struct step *st = &p->steps[s];
        for (int i = 0; i < st->next; i++) {
            int sl = p->slot[st->ext[i]];
            st->ptrs[i] = sl >= 0            ? (void *)p->bufs[sl]
                          : sl == SLOT_INPUT ? (void *)input
                                             : (void *)outs[SLOT_OUTPUT0 - sl];
        }
        if (st->kern) {
            const float *x[2] = {st->ptrs[0], st->kin > 1 ? st->ptrs[1] : NULL};
            float *y[2] = {st->ptrs[st->kin], st->next > st->kin + 1 ? st->ptrs[st->kin + 1] : NULL};
            nn_kern_run(st->kern, x, y, p->pool);
        } else {
            int rc = nn_xnn_run(st->xnn, st->ptrs, err);
            if (rc) return rc;
        }
    }
    return 0;
}
