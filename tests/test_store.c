/* test_store: the file object store: round trips, key validation (path traversal and friends),
 * caps, and atomic replacement seen by a concurrent reader. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store/store.h"

int main(void)
{
    char dir[] = "/tmp/facerec-store-XXXXXX", err[FR_ERR_LEN];
    if (!mkdtemp(dir)) return 1;
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    struct store *s;
    CHECK(store_open(&cfg, &s, err) == 0);
    CHECK(store_check(s, err) == 0);
    uint8_t *data;
    size_t len;
    CHECK(store_put(s, "input-bucket", "job_photo.jpg", "hello", 5, err) == 0);
    CHECK(store_get(s, "input-bucket", "job_photo.jpg", 100, &data, &len, err) == 0);
    CHECK(len == 5 && !memcmp(data, "hello", 5) && data[5] == 0);
    free(data);
    CHECK(store_get(s, "input-bucket", "job_photo.jpg", 4, &data, &len, err) == FR_ETOOBIG);
    CHECK(store_get(s, "input-bucket", "missing", 100, &data, &len, err) == FR_ENOTFOUND);
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
    CHECK(store_put(s, "Upper", "k", "x", 1, err) == FR_EINVAL);

    /* a reader never sees a partial object while a writer replaces it */
    static char a[100000], b[100000];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    CHECK(store_put(s, "output-bucket", "k", a, sizeof a, err) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct store *w;
        if (store_open(&cfg, &w, err)) _exit(2);
        for (int i = 0; i < 300; i++)
            if (store_put(w, "output-bucket", "k", i % 2 ? a : b, sizeof a, err)) _exit(3);
        store_close(w);
        _exit(0);
    }
    int torn = 0, reads = 0, status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (store_get(s, "output-bucket", "k", sizeof a, &data, &len, err) == 0) {
            reads++;
            torn += len != sizeof a || (memcmp(data, a, len) && memcmp(data, b, len));
            free(data);
        }
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_MSG(torn == 0 && reads > 0, "%d torn reads of %d", torn, reads);
    /* no temp files left behind */
    char path[600];
    snprintf(path, sizeof path, "%s/objects/output-bucket", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    int hidden = 0;
    while (d && (e = readdir(d)))
        hidden += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    CHECK(hidden == 0);
    store_close(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return check_done();
}
