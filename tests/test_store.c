/* test_store: the object store: round trips, key validation (path traversal and friends), caps,
 * versions and waits, and atomic replacement seen by a concurrent reader. Runs on the file
 * backend; with FACEREC_TEST_BACKEND=aws on the S3 backend the environment configures
 * (tests/test_store_s3.sh starts an emulator for that). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store/store.h"

/* One read-modify-write of a decimal counter object under store_put_if, retried on conflict.
 * Returns the number of conflicts met, or -1 on another error. */
static int bump(struct store *s, const char *key)
{
    char err[FR_ERR_LEN];
    for (int conflicts = 0; conflicts < 10000; conflicts++) {
        char ver[64], text[32];
        uint8_t *data = NULL;
        size_t len = 0;
        int rc = store_version(s, "input-bucket", key, ver, err);
        if (rc == FR_ENOTFOUND) ver[0] = 0;
        else if (rc) return -1;
        long n = 0;
        rc = store_get(s, "input-bucket", key, 32, &data, &len, err);
        if (rc == 0) n = atol((const char *)data);
        else if (rc != FR_ENOTFOUND) return -1;
        free(data);
        int w = snprintf(text, sizeof text, "%ld", n + 1);
        rc = store_put_if(s, "input-bucket", key, text, (size_t)w, ver, NULL, err);
        if (rc == 0) return conflicts;
        if (rc != FR_ECONFLICT) return -1;
    }
    return -1;
}

/* store_put_if: a write only from the version read. On S3 the emulators ignore the conditions
 * (the headers are still sent and signed): there only the unconflicted writes are checked. */
static void cas(const struct config *cfg, struct store *s, int s3)
{
    char err[FR_ERR_LEN], v1[64], v2[64], now[64];
    CHECK(store_delete(s, "input-bucket", "cas", err) == 0);
    CHECK_MSG(store_put_if(s, "input-bucket", "cas", "one", 3, "", v1, err) == 0, "%s", err);
    CHECK(store_version(s, "input-bucket", "cas", now, err) == 0);
    CHECK_MSG(!strcmp(v1, now), "version written %s, read back %s", v1, now);
    CHECK_MSG(store_put_if(s, "input-bucket", "cas", "two", 3, v1, v2, err) == 0, "%s", err);
    CHECK(store_version(s, "input-bucket", "cas", now, err) == 0 && !strcmp(v2, now));
    if (s3) {
        printf("note: the S3 emulators ignore If-Match / If-None-Match: conflicts not checked\n");
        return;
    }
    int rc = store_put_if(s, "input-bucket", "cas", "three", 5, v1, NULL, err);
    CHECK_MSG(rc == FR_ECONFLICT && strstr(err, "changed"), "stale version: %d %s", rc, err);
    CHECK(store_put_if(s, "input-bucket", "cas", "three", 5, "", NULL, err) == FR_ECONFLICT);
    uint8_t *data;
    size_t len;
    CHECK(store_get(s, "input-bucket", "cas", 10, &data, &len, err) == 0 && len == 3 &&
          !memcmp(data, "two", 3));
    free(data);
    /* four processes add 1 to a counter 25 times each: no increment is lost */
    enum { PROCS = 4, EACH = 25 };
    pid_t kids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        if ((kids[k] = fork()) != 0) continue;
        struct store *own;
        if (store_open(cfg, &own, err)) _exit(2);
        int conflicts = 0;
        for (int i = 0; i < EACH; i++) {
            int c = bump(own, "counter");
            if (c < 0) _exit(3);
            conflicts += c;
        }
        store_close(own);
        _exit(conflicts > 0 ? 10 : 0); /* 10: it met a conflict and went on */
    }
    int ok = 1, met = 0;
    for (int k = 0; k < PROCS; k++) {
        int status = 0;
        waitpid(kids[k], &status, 0);
        ok &= WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 10);
        met += WIFEXITED(status) && WEXITSTATUS(status) == 10;
    }
    CHECK(ok);
    CHECK(store_get(s, "input-bucket", "counter", 32, &data, &len, err) == 0);
    CHECK_MSG(atol((const char *)data) == PROCS * EACH, "counter %s after %d increments",
              (const char *)data, PROCS * EACH);
    printf("counter: %d increments from %d processes, %d of which met conflicts\n",
           PROCS * EACH, PROCS, met);
    free(data);
}

int main(void)
{
    char dir[] = "/tmp/facerec-store-XXXXXX", err[FR_ERR_LEN];
    if (!mkdtemp(dir)) return 1;
    struct config cfg;
    const char *backend = getenv("FACEREC_TEST_BACKEND");
    int s3 = backend && !strcmp(backend, "aws");
    if (s3) {
        if (config_load(&cfg, err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    } else {
        config_defaults(&cfg);
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    struct store *s;
    int opened = store_open(&cfg, &s, err);
    CHECK_MSG(opened == 0, "%s", err);
    if (opened) return check_done();
    CHECK_MSG(store_check(s, err) == 0, "%s", err);
    char ver1[64], ver2[64];
    CHECK(store_version(s, "output-bucket", "nothing-here", ver1, err) == FR_ENOTFOUND);
    CHECK(store_wait(s, "output-bucket", "nothing-here", 50, err) == FR_ETIMEOUT);
    uint8_t *data;
    size_t len;
    CHECK(store_put(s, "input-bucket", "job_photo.jpg", "hello", 5, err) == 0);
    CHECK(store_wait(s, "input-bucket", "job_photo.jpg", 50, err) == 0);
    CHECK(store_version(s, "input-bucket", "job_photo.jpg", ver1, err) == 0);
    usleep(20000);
    CHECK(store_put(s, "input-bucket", "job_photo.jpg", "hello", 5, err) == 0);
    CHECK(store_version(s, "input-bucket", "job_photo.jpg", ver2, err) == 0);
    CHECK_MSG(s3 || strcmp(ver1, ver2) != 0, "version unchanged after a rewrite"); /* ETag: content */
    CHECK(store_get(s, "input-bucket", "job_photo.jpg", 100, &data, &len, err) == 0);
    CHECK(len == 5 && !memcmp(data, "hello", 5) && data[5] == 0);
    free(data);
    int got = store_get(s, "input-bucket", "missing", 100, &data, &len, err);
    CHECK_MSG(got == FR_ENOTFOUND, "missing object: %d %s", got, err);
    CHECK(store_put(s, "input-bucket", "empty", "", 0, err) == 0);
    CHECK(store_get(s, "input-bucket", "empty", 100, &data, &len, err) == 0 && len == 0);
    free(data);
    CHECK(store_delete(s, "input-bucket", "job_photo.jpg", err) == 0);
    CHECK(store_delete(s, "input-bucket", "job_photo.jpg", err) == 0); /* missing is fine */
    CHECK(store_get(s, "input-bucket", "job_photo.jpg", 100, &data, &len, err) == FR_ENOTFOUND);

    static const char *bad_keys[] = {"", "../etc/passwd", "a/b", "..", ".hidden", "a\\b",
                                     "tab\there", "new\nline", "del\x7f"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
        CHECK_MSG(!store_key_valid(bad_keys[i]), "key %zu accepted", i);
        CHECK(store_put(s, "input-bucket", bad_keys[i], "x", 1, err) == FR_EINVAL);
        CHECK(store_get(s, "input-bucket", bad_keys[i], 10, &data, &len, err) == FR_EINVAL);
    }
    char longkey[STORE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    CHECK(!store_key_valid(longkey));
    CHECK(store_key_valid("3f2a_photo (1).jpg") && store_key_valid("name with ünïcode"));
    CHECK(store_put(s, "../up", "k", "x", 1, err) == FR_EINVAL);
    char odd_key[] = "3f2a_photo (1) #?&=+%.jpg";
    CHECK(store_put(s, "input-bucket", odd_key, "odd", 3, err) == 0);
    CHECK(store_get(s, "input-bucket", odd_key, 10, &data, &len, err) == 0 && len == 3);
    free(data);
    CHECK(store_put(s, "Upper", "k", "x", 1, err) == FR_EINVAL);

    /* a watch reports each object put into its bucket after it started, by key */
    struct store_watch *sw;
    int wrc = store_watch_open(s, "output-bucket", &sw, err);
    CHECK_MSG(s3 ? wrc == FR_EUNSUPPORTED : wrc == 0, "watch: %d %s", wrc, err);
    if (!wrc) {
        char key[STORE_KEY_MAX + 1];
        CHECK(store_watch_next(sw, 20, key, err) == FR_ETIMEOUT);
        CHECK(store_put(s, "input-bucket", "elsewhere", "x", 1, err) == 0);
        CHECK(store_put(s, "output-bucket", "r1", "x", 1, err) == 0);
        CHECK(store_put(s, "output-bucket", "r2", "y", 1, err) == 0);
        CHECK(store_watch_next(sw, 1000, key, err) == 0 && !strcmp(key, "r1"));
        CHECK(store_watch_next(sw, 1000, key, err) == 0 && !strcmp(key, "r2"));
        CHECK(store_watch_next(sw, 20, key, err) == FR_ETIMEOUT);
        store_watch_close(sw);
    }
    store_watch_close(NULL);

    /* DURABILITY=process: no fsync, the same objects */
    if (!s3) {
        struct config quick = cfg;
        struct store *qs;
        snprintf(quick.durability, sizeof quick.durability, "process");
        CHECK(store_open(&quick, &qs, err) == 0);
        CHECK(store_put(qs, "input-bucket", "quick", "fast", 4, err) == 0);
        CHECK(store_get(s, "input-bucket", "quick", 10, &data, &len, err) == 0 && len == 4);
        free(data);
        store_close(qs);
    }

    /* a reader never sees a partial object while a writer replaces it (files only: real S3 is
     * atomic, but s3rver writes in place and its proxy does not survive the race) */
    static char a[100000], b[100000];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    CHECK(store_put(s, "output-bucket", "k", a, sizeof a, err) == 0);
    pid_t pid = s3 ? -1 : fork();
    if (pid == 0) {
        struct store *w;
        if (store_open(&cfg, &w, err)) _exit(2);
        for (int i = 0; i < 300; i++)
            if (store_put(w, "output-bucket", "k", i % 2 ? a : b, sizeof a, err)) _exit(3);
        store_close(w);
        _exit(0);
    }
    int torn = 0, reads = 0, status = 0;
    while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
        if (store_get(s, "output-bucket", "k", sizeof a, &data, &len, err) == 0) {
            reads++;
            torn += len != sizeof a || (memcmp(data, a, len) && memcmp(data, b, len));
            free(data);
        }
    }
    CHECK(s3 || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK_MSG(s3 || (torn == 0 && reads > 0), "%d torn reads of %d", torn, reads);
    /* no temp files left behind (files only) */
    char path[600];
    snprintf(path, sizeof path, "%s/objects/output-bucket", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    int hidden = 0;
    while (d && (e = readdir(d)))
        hidden += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    CHECK(s3 || hidden == 0);
    cas(&cfg, s, s3);
    /* last: a reader giving up mid-body drops the connection, which the shared SigV4 proxy
     * does not survive */
    CHECK(store_put(s, "input-bucket", "five", "12345", 5, err) == 0);
    CHECK(store_get(s, "input-bucket", "five", 4, &data, &len, err) == FR_ETOOBIG);
    store_close(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return check_done();
}
