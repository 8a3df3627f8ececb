/* waits.c: the waiter table and the thread that watches for results. */
#include "service/waits.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/text.h"

#define TICK_MS 100 /* longest sleep of the thread: deadlines are seen within it */

struct waiter {
    char key[WAITS_KEY_MAX + 1];
    double added, deadline, next_poll; /* now_ms; next_poll: S3 only */
    wait_fn fn;
    void *arg;
    int ready;
};

struct waits {
    char bucket[64];
    struct store *store;       /* the thread's own handle */
    struct store_watch *watch; /* NULL: the backend cannot report arrivals, so keys are polled */
    pthread_t thread;
    pthread_mutex_t lock; /* guards all below */
    pthread_cond_t wake;  /* polling only: a waiter was added, or stop */
    struct waiter *w;
    int n, stop;
};

/* Removes waiter i (order does not matter). Caller holds the lock. */
static struct waiter take(struct waits *ws, int i)
{
    struct waiter t = ws->w[i];
    ws->w[i] = ws->w[--ws->n];
    return t;
}

static int find(const struct waits *ws, const char *key)
{
    for (int i = 0; i < ws->n; i++)
        if (!strcmp(ws->w[i].key, key)) return i;
    return -1;
}

/* Polls the keys that are due (S3), without the lock held during the requests. */
static void poll_due(struct waits *ws)
{
    char keys[32][WAITS_KEY_MAX + 1];
    int n = 0;
    double now = now_ms();
    pthread_mutex_lock(&ws->lock);
    for (int i = 0; i < ws->n && n < 32; i++)
        if (!ws->w[i].ready && ws->w[i].next_poll <= now) {
            double age = now - ws->w[i].added, period = age / 10;
            ws->w[i].next_poll = now + (period < 20 ? 20 : period > 1000 ? 1000 : period);
            strcpy(keys[n++], ws->w[i].key);
        }
    pthread_mutex_unlock(&ws->lock);
    for (int k = 0; k < n; k++) {
        char ver[64], err[FR_ERR_LEN];
        if (store_version(ws->store, ws->bucket, keys[k], ver, err)) continue; /* not yet, or down */
        pthread_mutex_lock(&ws->lock);
        int i = find(ws, keys[k]);
        if (i >= 0) ws->w[i].ready = 1;
        pthread_mutex_unlock(&ws->lock);
    }
}

/* Every waiter looks again (local files, after the watch overflowed). */
static void look_all(struct waits *ws)
{
    pthread_mutex_lock(&ws->lock);
    for (int i = 0; i < ws->n; i++) {
        char ver[64], err[FR_ERR_LEN];
        if (!ws->w[i].ready && store_version(ws->store, ws->bucket, ws->w[i].key, ver, err) == 0)
            ws->w[i].ready = 1;
    }
    pthread_mutex_unlock(&ws->lock);
}

static void *run(void *arg)
{
    struct waits *ws = arg;
    for (;;) {
        /* wait for an arrival, a poll coming due, or a tick */
        if (ws->watch) {
            char key[STORE_KEY_MAX + 1], err[FR_ERR_LEN];
            int rc = store_watch_next(ws->watch, TICK_MS, key, err);
            if (rc == 0 && key[0]) {
                pthread_mutex_lock(&ws->lock);
                int i = find(ws, key);
                if (i >= 0) ws->w[i].ready = 1;
                pthread_mutex_unlock(&ws->lock);
            } else if (rc == 0) {
                look_all(ws);
            } else if (rc != FR_ETIMEOUT) {
                struct timespec ts = {0, TICK_MS * 1000000L}; /* keep the deadlines going */
                nanosleep(&ts, NULL);
            }
        } else {
            poll_due(ws);
            pthread_mutex_lock(&ws->lock);
            double now = now_ms(), until = now + TICK_MS;
            for (int i = 0; i < ws->n; i++)
                if (ws->w[i].next_poll < until) until = ws->w[i].next_poll;
            if (!ws->stop && until > now) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                long long ns = ts.tv_nsec + (long long)((until - now) * 1e6);
                ts.tv_sec += ns / 1000000000;
                ts.tv_nsec = ns % 1000000000;
                pthread_cond_timedwait(&ws->wake, &ws->lock, &ts);
            }
            pthread_mutex_unlock(&ws->lock);
        }
        /* call back the waiters that are done, outside the lock */
        struct waiter done[64];
        enum wait_outcome how[64];
        int more = 1, stop = 0;
        while (more) {
            int n = 0;
            pthread_mutex_lock(&ws->lock);
            stop = ws->stop;
            double now = now_ms();
            for (int i = 0; i < ws->n && n < 64;) {
                struct waiter *x = &ws->w[i];
                if (x->ready || stop || now >= x->deadline) {
                    how[n] = x->ready ? WAIT_READY : stop ? WAIT_STOPPED : WAIT_TIMEOUT;
                    done[n++] = take(ws, i);
                } else {
                    i++;
                }
            }
            more = n == 64;
            pthread_mutex_unlock(&ws->lock);
            for (int k = 0; k < n; k++)
                done[k].fn(done[k].arg, how[k]);
        }
        if (stop) return NULL;
    }
}

/* What waits_open made, once its thread (if any) has ended. */
static void waits_free(struct waits *ws)
{
    store_watch_close(ws->watch);
    store_close(ws->store);
    pthread_cond_destroy(&ws->wake);
    pthread_mutex_destroy(&ws->lock);
    free(ws->w);
    free(ws);
}

int waits_open(const struct config *c, struct waits **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct waits *ws = calloc(1, sizeof *ws);
    if (!ws || !(ws->w = calloc(WAITS_MAX, sizeof *ws->w))) {
        free(ws);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    snprintf(ws->bucket, sizeof ws->bucket, "%s", c->s3_out_bucket);
    int rc = store_open(c, &ws->store, err);
    if (!rc) {
        rc = store_watch_open(ws->store, ws->bucket, &ws->watch, err);
        if (rc == FR_EUNSUPPORTED) rc = 0; /* polled */
    }
    pthread_mutex_init(&ws->lock, NULL);
    pthread_cond_init(&ws->wake, NULL);
    if (!rc && pthread_create(&ws->thread, NULL, run, ws) != 0)
        rc = fr_fail(err, FR_EIO, "cannot start the thread that waits for results");
    if (rc) {
        waits_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

void waits_close(struct waits *ws)
{
    if (!ws) return;
    pthread_mutex_lock(&ws->lock);
    ws->stop = 1;
    pthread_cond_signal(&ws->wake);
    pthread_mutex_unlock(&ws->lock);
    pthread_join(ws->thread, NULL); /* it calls back the remaining waiters before it ends */
    waits_free(ws);
}

int waits_add(struct waits *ws, struct store *s, const char *key, double deadline, wait_fn fn,
              void *arg, char err[FR_ERR_LEN])
{
    if (strlen(key) > WAITS_KEY_MAX) return fr_fail(err, FR_EINVAL, "key too long to wait for");
    double now = now_ms();
    pthread_mutex_lock(&ws->lock);
    if (ws->n == WAITS_MAX || ws->stop) {
        pthread_mutex_unlock(&ws->lock);
        return fr_fail(err, FR_ETOOBIG, "%d requests wait for results already", WAITS_MAX);
    }
    struct waiter *x = &ws->w[ws->n++];
    *x = (struct waiter){"", now, deadline, now, fn, arg, 0};
    strcpy(x->key, key);
    if (!ws->watch) pthread_cond_signal(&ws->wake); /* its first poll is due */
    pthread_mutex_unlock(&ws->lock);
    if (!ws->watch) return 0;
    /* watched first, now looked for: a result that came before the watch saw it is found here;
     * whoever takes the waiter out of the table calls it back */
    char ver[64], why[FR_ERR_LEN];
    if (store_version(s, ws->bucket, key, ver, why) != 0) return 0;
    pthread_mutex_lock(&ws->lock);
    int i = find(ws, key);
    int mine = i >= 0 && ws->w[i].fn == fn && ws->w[i].arg == arg;
    if (mine) take(ws, i);
    pthread_mutex_unlock(&ws->lock);
    if (mine) fn(arg, WAIT_READY);
    return 0;
}
