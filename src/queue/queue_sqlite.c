/* queue_sqlite.c: the embedded queue: one SQLite database (WAL) under DATA_DIR, shared by any
 * number of processes. A message is a row; receiving claims the oldest visible row by moving its
 * visible_at into the future and giving it a fresh receipt, in one conditional UPDATE, so two
 * workers never both get it. Long polling sleeps on inotify: every write to the database goes to
 * its WAL file, so a send by any process wakes the waiting workers at once (with a re-check every
 * 50 ms for delayed messages coming due). A sender also touches DATA_DIR/queue.bell once its
 * commit is visible: under synchronous=FULL the WAL is written, then fsync'd, then committed, and
 * a worker woken by the write alone would look too early and sleep through the commit.
 *
 * Durability: WAL; every commit survives any process crash. DURABILITY=power makes a connection
 * that sends use synchronous=FULL (the WAL is fsync'd at each commit, so a sent message survives
 * power loss; queue_send_batch sends many with one fsync); receives, deletes and retries stay
 * synchronous=NORMAL (an OS crash may undo the last of them: a job is then done again, never
 * lost). DURABILITY=process keeps NORMAL everywhere: an OS crash may lose the last messages sent.
 * Either way the database stays consistent. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "queue/backend.h"
#include "util/text.h"

struct sq {
    sqlite3 *db;
    int notify; /* inotify on DATA_DIR, or -1 (then plain sleeps) */
    int durable, full; /* DURABILITY=power; synchronous=FULL set on this connection */
    int bell;          /* DATA_DIR/queue.bell, touched after each send's commit; or -1 */
    char name[96], dlq[104];
    sqlite3_stmt *peek, *claim, *insert, *del, *retry, *dead, *counts, *dead_count;
};

/* Wall-clock milliseconds: visibility times are shared between processes and restarts. */
static int db_fail(struct sq *q, const char *what, char *err)
{
    return fr_fail(err, FR_EBACKEND, "queue database: %s: %s", what, sqlite3_errmsg(q->db));
}

static int step_done(struct sq *q, sqlite3_stmt *st, const char *what, char *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(q, what, err);
}

/* Under DURABILITY=power a connection that sends commits with an fsync of the WAL. */
static int sync_sends(struct sq *q, char *err)
{
    if (!q->durable || q->full) return 0;
    if (sqlite3_exec(q->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(q, "synchronous=FULL", err);
    q->full = 1;
    return 0;
}

static int insert(struct sq *q, const char *body, long long now, int delay_s, char *err)
{
    sqlite3_bind_text(q->insert, 1, q->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q->insert, 2, body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q->insert, 3, now + (long long)delay_s * 1000);
    sqlite3_bind_int64(q->insert, 4, now);
    return step_done(q, q->insert, "send", err);
}

/* Wakes the waiting receivers now that the commit is visible (IN_ATTRIB on the bell). */
static void ring(struct sq *q)
{
    if (q->bell >= 0) (void)futimens(q->bell, NULL);
}

static int sq_send(void *impl, const char *body, int delay_s, char *err)
{
    struct sq *q = impl;
    int rc = sync_sends(q, err);
    if (!rc) rc = insert(q, body, wall_ms(), delay_s, err);
    if (!rc) ring(q);
    return rc;
}

/* All in one transaction: one commit, one fsync at most; all or none. */
static int sq_send_batch(void *impl, const char *const *bodies, int n, int *rcs, char *err)
{
    struct sq *q = impl;
    int rc = sync_sends(q, err);
    if (!rc && sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_fail(q, "send", err);
    long long now = wall_ms();
    for (int i = 0; i < n && !rc; i++)
        rc = insert(q, bodies[i], now, 0, err);
    if (!rc && sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_fail(q, "send", err);
    if (rc && !sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    if (!rc) ring(q);
    for (int i = 0; i < n; i++)
        rcs[i] = rc;
    return rc;
}

/* SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries: behind a commit that
 * takes tens of microseconds a worker would leave its core idle for milliseconds. This one tries
 * again after 20 us, doubling up to 1 ms, for about 10 s in all. */
static int on_busy(void *arg, int tries)
{
    (void)arg;
    if (tries > 10000) return 0;
    long us = tries < 6 ? 20L << tries : 1000;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    return 1;
}

/* One attempt: 1 when a message was claimed into m, 0 when none is visible, < 0 on error. */
static int try_claim(struct sq *q, int visibility_s, struct queue_msg *m, char *err)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        long long now = wall_ms();
        sqlite3_bind_text(q->peek, 1, q->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q->peek, 2, now);
        int rc = sqlite3_step(q->peek);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(q->peek);
            return 0;
        }
        if (rc != SQLITE_ROW) {
            sqlite3_reset(q->peek);
            return db_fail(q, "receive", err);
        }
        long long id = sqlite3_column_int64(q->peek, 0);
        sqlite3_reset(q->peek);
        uint64_t nonce;
        if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) nonce = (uint64_t)now ^ (uint64_t)id;
        char receipt[64];
        snprintf(receipt, sizeof receipt, "%lld.%016llx", id, (unsigned long long)nonce);
        /* the claim succeeds only if nobody else claimed the row since the peek */
        sqlite3_bind_int64(q->claim, 1, now + (long long)visibility_s * 1000);
        sqlite3_bind_text(q->claim, 2, receipt, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q->claim, 3, id);
        sqlite3_bind_int64(q->claim, 4, now);
        rc = sqlite3_step(q->claim);
        if (rc == SQLITE_ROW) {
            const unsigned char *body = sqlite3_column_text(q->claim, 0);
            snprintf(m->body, sizeof m->body, "%s", body ? (const char *)body : "");
            m->receive_count = sqlite3_column_int(q->claim, 1);
            m->sent_ms = sqlite3_column_int64(q->claim, 2);
            snprintf(m->receipt, sizeof m->receipt, "%s", receipt);
            sqlite3_reset(q->claim);
            return 1;
        }
        sqlite3_reset(q->claim);
        if (rc != SQLITE_DONE) return db_fail(q, "receive", err);
        /* lost the race for that row: look again */
    }
    return 0;
}

static int sq_receive(void *impl, int wait_s, int visibility_s, struct queue_msg *m, char *err)
{
    struct sq *q = impl;
    long long deadline = wall_ms() + (long long)wait_s * 1000;
    for (;;) {
        int rc = try_claim(q, visibility_s, m, err);
        if (rc < 0) return rc;
        if (rc == 1) return 0;
        long long left = deadline - wall_ms();
        if (left <= 0) return fr_fail(err, FR_ETIMEOUT, "no message within %d s", wait_s);
        long long nap = left < 50 ? left : 50;
        if (q->notify >= 0) {
            struct pollfd p = {q->notify, POLLIN, 0};
            if (poll(&p, 1, (int)nap) > 0) {
                char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                while (read(q->notify, events, sizeof events) > 0) {}
            }
        } else {
            struct timespec ts = {0, (nap < 5 ? nap : 5) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

static int by_receipt(struct sq *q, sqlite3_stmt *st, const char *receipt, long long visible_at,
                      const char *what, char *err)
{
    int k = 1;
    if (visible_at >= 0) sqlite3_bind_int64(st, k++, visible_at);
    sqlite3_bind_text(st, k, receipt, -1, SQLITE_TRANSIENT);
    int rc = step_done(q, st, what, err);
    if (rc) return rc;
    if (sqlite3_changes(q->db) == 0)
        return fr_fail(err, FR_ENOTFOUND, "%s: receipt is stale or unknown", what);
    return 0;
}

static int sq_del(void *impl, const char *receipt, char *err)
{
    struct sq *q = impl;
    return by_receipt(q, q->del, receipt, -1, "delete", err);
}

static int sq_retry(void *impl, const char *receipt, int delay_s, char *err)
{
    struct sq *q = impl;
    return by_receipt(q, q->retry, receipt, wall_ms() + (long long)delay_s * 1000, "retry", err);
}

static int sq_dead_letter(void *impl, const struct queue_msg *m, char *err)
{
    struct sq *q = impl;
    sqlite3_bind_text(q->dead, 3, q->dlq, -1, SQLITE_STATIC);
    return by_receipt(q, q->dead, m->receipt, wall_ms(), "dead-letter", err);
}

static int sq_counts(void *impl, struct queue_counts *c, char *err)
{
    struct sq *q = impl;
    sqlite3_bind_int64(q->counts, 1, wall_ms());
    sqlite3_bind_text(q->counts, 2, q->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q->counts);
    if (rc == SQLITE_ROW) {
        c->waiting = sqlite3_column_int64(q->counts, 0);
        c->in_flight = sqlite3_column_int64(q->counts, 1);
        c->delayed = sqlite3_column_int64(q->counts, 2);
    }
    sqlite3_reset(q->counts);
    if (rc != SQLITE_ROW) return db_fail(q, "counts", err);
    sqlite3_bind_text(q->dead_count, 1, q->dlq, -1, SQLITE_STATIC);
    rc = sqlite3_step(q->dead_count);
    if (rc == SQLITE_ROW) c->dead = sqlite3_column_int64(q->dead_count, 0);
    sqlite3_reset(q->dead_count);
    return rc == SQLITE_ROW ? 0 : db_fail(q, "counts", err);
}

/* Any write to the database goes to the WAL file in DATA_DIR, which inotify reports. */
static void sq_wait_change(void *impl, int timeout_ms)
{
    struct sq *q = impl;
    if (q->notify < 0) {
        struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    /* events left from before this wait also count: they may be newer than the caller's look */
    struct pollfd p = {q->notify, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) > 0) {
        char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        while (read(q->notify, events, sizeof events) > 0) {}
    }
}

static void sq_close(void *impl)
{
    struct sq *q = impl;
    sqlite3_stmt *all[] = {q->peek, q->claim, q->insert, q->del, q->retry, q->dead, q->counts, q->dead_count};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(q->db);
    if (q->notify >= 0) close(q->notify);
    if (q->bell >= 0) close(q->bell);
    free(q);
}

static const struct queue_ops sq_ops = {sq_send,  sq_send_batch,  sq_receive, sq_del,         sq_retry,
                                        sq_dead_letter, sq_counts, sq_wait_change, sq_close};

int queue_sqlite_open(const struct config *c, const struct queue_ops **ops, void **impl,
                      char err[FR_ERR_LEN])
{
    if (mkdir(c->data_dir, 0755) != 0 && errno != EEXIST)
        return fr_fail(err, FR_EIO, "mkdir %s: %s", c->data_dir, strerror(errno));
    struct sq *q = calloc(1, sizeof *q);
    if (!q) return fr_fail(err, FR_ENOMEM, "out of memory");
    q->notify = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (q->notify >= 0 &&
        inotify_add_watch(q->notify, c->data_dir, IN_MODIFY | IN_CREATE | IN_ATTRIB) < 0) {
        close(q->notify);
        q->notify = -1;
    }
    char bell[CONFIG_STR_MAX + 16];
    snprintf(bell, sizeof bell, "%s/queue.bell", c->data_dir);
    q->bell = open(bell, O_WRONLY | O_CREAT | O_CLOEXEC, 0644); /* without it, 50 ms re-checks */
    snprintf(q->name, sizeof q->name, "%s", c->sqs_req_queue_name);
    snprintf(q->dlq, sizeof q->dlq, "%s-dlq", c->sqs_req_queue_name);
    char path[CONFIG_STR_MAX + 16];
    snprintf(path, sizeof path, "%s/queue.db", c->data_dir);
    int rc = 0;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = fr_fail(err, FR_EIO, "queue database %s: %s", path,
                     q->db ? sqlite3_errmsg(q->db) : "cannot open");
        goto done;
    }
    sqlite3_busy_handler(q->db, on_busy, NULL);
    q->durable = !strcmp(c->durability, "power");
    static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "CREATE TABLE IF NOT EXISTS messages("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " queue TEXT NOT NULL,"
        " body TEXT NOT NULL,"
        " visible_at INTEGER NOT NULL,"
        " receives INTEGER NOT NULL DEFAULT 0,"
        " receipt TEXT,"
        " sent_at INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS messages_ready ON messages(queue, visible_at);"
        "CREATE INDEX IF NOT EXISTS messages_receipt ON messages(receipt);";
    char *msg = NULL;
    if (sqlite3_exec(q->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        rc = fr_fail(err, FR_EBACKEND, "queue database %s: %s", path, msg ? msg : "schema failed");
        sqlite3_free(msg);
        goto done;
    }
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&q->peek, "SELECT id FROM messages WHERE queue=?1 AND visible_at<=?2 "
                   "ORDER BY visible_at, id LIMIT 1"},
        {&q->claim, "UPDATE messages SET visible_at=?1, receipt=?2, receives=receives+1 "
                    "WHERE id=?3 AND visible_at<=?4 RETURNING body, receives, sent_at"},
        {&q->insert, "INSERT INTO messages(queue, body, visible_at, sent_at) VALUES(?1,?2,?3,?4)"},
        {&q->del, "DELETE FROM messages WHERE receipt=?1"},
        {&q->retry, "UPDATE messages SET visible_at=?1, receipt=NULL WHERE receipt=?2"},
        {&q->dead, "UPDATE messages SET visible_at=?1, queue=?3, receipt=NULL WHERE receipt=?2"},
        {&q->counts, "SELECT coalesce(sum(visible_at<=?1),0),"
                     " coalesce(sum(visible_at>?1 AND receipt IS NOT NULL),0),"
                     " coalesce(sum(visible_at>?1 AND receipt IS NULL),0)"
                     " FROM messages WHERE queue=?2"},
        {&q->dead_count, "SELECT count(*) FROM messages WHERE queue=?1"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts && !rc; i++)
        if (sqlite3_prepare_v2(q->db, stmts[i].sql, -1, stmts[i].st, NULL) != SQLITE_OK)
            rc = db_fail(q, "prepare", err);
done:
    if (rc) {
        sq_close(q);
        return rc;
    }
    *ops = &sq_ops;
    *impl = q;
    return 0;
}
