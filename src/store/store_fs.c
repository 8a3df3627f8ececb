/* store_fs.c: objects as files, DATA_DIR/objects/<bucket>/<key>, written atomically: a temp file
 * in the same directory, (DURABILITY=power: fsync,) rename over the key, (fsync of the directory).
 * A reader opens either the old file or the new one, never a partial one. A write is in the page
 * cache once written, so it survives the death of any process; the fsyncs make it survive an OS
 * crash too. A conditional write (store_put_if) compares versions and renames while holding
 * flock on DATA_DIR/objects/<bucket>/.lock, so conditional writers of a bucket, in any process,
 * take turns. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"

struct fs {
    char root[CONFIG_STR_MAX + 16];
    char in[64], out[64]; /* the configured buckets, created at open */
    int sync;             /* DURABILITY=power: fsync each object and its directory */
};

static int mkdir_p(const char *path, char *err)
{
    char tmp[CONFIG_STR_MAX + 96];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return fr_fail(err, FR_EINVAL, "path too long");
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return fr_fail(err, FR_EIO, "mkdir %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return fr_fail(err, FR_EIO, "mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

static int bucket_dir(const struct fs *f, const char *bucket, char *buf, size_t n)
{
    return snprintf(buf, n, "%s/%s", f->root, bucket) >= (int)n ? FR_EINVAL : 0;
}

/* An object's version: rename() gives a replaced object a new inode, and with the time and size
 * that is a reliable change mark. */
static void version_of(const struct stat *st, char ver[64])
{
    snprintf(ver, 64, "%llx-%lld.%09ld-%lld", (unsigned long long)st->st_ino,
             (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_size);
}

static int fs_version(void *impl, const char *bucket, const char *key, char ver[64], char *err)
{
    struct fs *f = impl;
    char path[CONFIG_STR_MAX + 96 + STORE_KEY_MAX + 2];
    if (snprintf(path, sizeof path, "%s/%s/%s", f->root, bucket, key) >= (int)sizeof path)
        return fr_fail(err, FR_EINVAL, "path too long");
    struct stat st;
    if (stat(path, &st) != 0)
        return fr_fail(err, errno == ENOENT ? FR_ENOTFOUND : FR_EIO, "%s: %s", path, strerror(errno));
    version_of(&st, ver);
    return 0;
}

/* Takes the bucket's lock of conditional writes (dir/.lock, flock): *fd to close to let go. */
static int lock_bucket(const char *dir, int *fd, char *err)
{
    char path[CONFIG_STR_MAX + 96 + 8];
    snprintf(path, sizeof path, "%s/.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0 && errno == ENOENT) {
        int rc = mkdir_p(dir, err);
        if (rc) return rc;
        *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    }
    if (*fd < 0) return fr_fail(err, FR_EIO, "open %s: %s", path, strerror(errno));
    int r;
    while ((r = flock(*fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (r != 0) {
        int rc = fr_fail(err, FR_EIO, "lock %s: %s", path, strerror(errno));
        close(*fd);
        *fd = -1;
        return rc;
    }
    return 0;
}

/* Writes path (in dir) atomically; its version into new_ver when not NULL. */
static int write_object(struct fs *f, const char *dir, const char *path, const void *data,
                        size_t len, char *new_ver, char *err)
{
    char tmp[CONFIG_STR_MAX + 96 + STORE_KEY_MAX + 2 + 32];
    int rc = 0;
    /* the temp name is hidden (leading '.') and unique per process and call */
    static unsigned counter;
    snprintf(tmp, sizeof tmp, "%s/.tmp.%ld.%u", dir, (long)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) { /* a bucket other than the two made at open, or removed */
        if ((rc = mkdir_p(dir, err)) != 0) return rc;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0) return fr_fail(err, FR_EIO, "create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = fr_fail(err, FR_EIO, "write %s: %s", tmp, strerror(errno));
            break;
        }
        p += w, left -= (size_t)w;
    }
    if (!rc && f->sync && fsync(fd) != 0) rc = fr_fail(err, FR_EIO, "fsync %s: %s", tmp, strerror(errno));
    struct stat st; /* rename() keeps the inode and time: the object's version as it will be */
    if (!rc && new_ver) {
        if (fstat(fd, &st) == 0) version_of(&st, new_ver);
        else rc = fr_fail(err, FR_EIO, "stat %s: %s", tmp, strerror(errno));
    }
    if (close(fd) != 0 && !rc) rc = fr_fail(err, FR_EIO, "close %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = fr_fail(err, FR_EIO, "rename to %s: %s", path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if (!f->sync) return 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0) rc = fr_fail(err, FR_EIO, "fsync %s: %s", dir, strerror(errno));
        close(dfd);
    }
    return rc;
}

static int fs_put(void *impl, const char *bucket, const char *key, const void *data, size_t len,
                  const char *if_ver, char *new_ver, char *err)
{
    struct fs *f = impl;
    char dir[CONFIG_STR_MAX + 96], path[CONFIG_STR_MAX + 96 + STORE_KEY_MAX + 2];
    if (bucket_dir(f, bucket, dir, sizeof dir)) return fr_fail(err, FR_EINVAL, "path too long");
    snprintf(path, sizeof path, "%s/%s", dir, key);
    if (!if_ver) return write_object(f, dir, path, data, len, new_ver, err);
    int lock, rc = lock_bucket(dir, &lock, err);
    if (rc) return rc;
    char ver[64];
    rc = fs_version(impl, bucket, key, ver, err);
    if (rc == FR_ENOTFOUND) ver[0] = 0, rc = 0;
    if (!rc && strcmp(ver, if_ver) != 0)
        rc = fr_fail(err, FR_ECONFLICT, "%s/%s changed since it was read", bucket, key);
    if (!rc) rc = write_object(f, dir, path, data, len, new_ver, err);
    close(lock);
    return rc;
}

static int fs_get(void *impl, const char *bucket, const char *key, size_t max, uint8_t **data,
                  size_t *len, char *err)
{
    struct fs *f = impl;
    char path[CONFIG_STR_MAX + 96 + STORE_KEY_MAX + 2];
    if (snprintf(path, sizeof path, "%s/%s/%s", f->root, bucket, key) >= (int)sizeof path)
        return fr_fail(err, FR_EINVAL, "path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return fr_fail(err, FR_ENOTFOUND, "no object %s/%s", bucket, key);
        return fr_fail(err, FR_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = fr_fail(err, FR_EIO, "%s is not a readable file", path);
    else if ((uint64_t)st.st_size > max)
        rc = fr_fail(err, FR_ETOOBIG, "object %s/%s is %lld bytes, over %zu", bucket, key,
                     (long long)st.st_size, max);
    uint8_t *buf = rc ? NULL : malloc((size_t)st.st_size + 1);
    if (!rc && !buf) rc = fr_fail(err, FR_ENOMEM, "out of memory");
    size_t got = 0;
    while (!rc && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) rc = fr_fail(err, FR_EIO, "read %s: %s", path, r ? strerror(errno) : "short");
        else got += (size_t)r;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[got] = 0;
    *data = buf;
    *len = got;
    return 0;
}

static int fs_del(void *impl, const char *bucket, const char *key, char *err)
{
    struct fs *f = impl;
    char path[CONFIG_STR_MAX + 96 + STORE_KEY_MAX + 2];
    if (snprintf(path, sizeof path, "%s/%s/%s", f->root, bucket, key) >= (int)sizeof path)
        return fr_fail(err, FR_EINVAL, "path too long");
    if (unlink(path) != 0 && errno != ENOENT)
        return fr_fail(err, FR_EIO, "unlink %s: %s", path, strerror(errno));
    return 0;
}

/* Waits for key in bucket with inotify on the bucket directory: objects arrive by rename, so
 * IN_MOVED_TO with the key's name means it is there, whole. */
static int fs_wait(void *impl, const char *bucket, const char *key, int timeout_ms, char *err)
{
    struct fs *f = impl;
    char dir[CONFIG_STR_MAX + 96], ver[64];
    if (bucket_dir(f, bucket, dir, sizeof dir)) return fr_fail(err, FR_EINVAL, "path too long");
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    int wd = fd >= 0 ? inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CREATE) : -1;
    /* watch first, then look: an object that arrived in between is seen by the look */
    int rc = fs_version(impl, bucket, key, ver, err);
    if (rc != FR_ENOTFOUND) {
        if (fd >= 0) close(fd);
        return rc;
    }
    if (wd < 0) { /* no inotify (e.g. over the per-user instance limit): poll instead */
        if (fd >= 0) close(fd);
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int nap_ms = 2;; nap_ms = nap_ms < 20 ? nap_ms * 2 : 20) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long elapsed = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            if (elapsed >= timeout_ms) return fr_fail(err, FR_ETIMEOUT, "no object %s/%s yet", bucket, key);
            struct timespec ts = {0, nap_ms * 1000000L};
            nanosleep(&ts, NULL);
            rc = fs_version(impl, bucket, key, ver, err);
            if (rc != FR_ENOTFOUND) return rc;
        }
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) {
            rc = fr_fail(err, FR_ETIMEOUT, "no object %s/%s yet", bucket, key);
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        long wait = timeout_ms - elapsed;
        int n = poll(&p, 1, (int)(wait < 1000 ? wait : 1000));
        if (n < 0 && errno != EINTR) {
            rc = fr_fail(err, FR_EIO, "poll: %s", strerror(errno));
            break;
        }
        char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        int seen = 0;
        ssize_t len;
        while ((len = read(fd, events, sizeof events)) > 0)
            for (char *e = events; e < events + len;) {
                struct inotify_event *ev = (struct inotify_event *)e;
                if (ev->len && !strcmp(ev->name, key)) seen = 1;
                if (ev->mask & IN_Q_OVERFLOW) seen = 1;
                e += sizeof *ev + ev->len;
            }
        /* on an event for the key, or every second anyway, look again */
        if (seen || n == 0) {
            rc = fs_version(impl, bucket, key, ver, err);
            if (rc != FR_ENOTFOUND) break;
        }
    }
    close(fd);
    return rc;
}

struct fs_watch {
    int fd;
    ssize_t len, off; /* events read and not yet returned: buf[off..len) */
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
};

static void fs_watch_close(void *impl)
{
    struct fs_watch *w = impl;
    if (w->fd >= 0) close(w->fd);
    free(w);
}

/* Objects arrive by rename only (fs_put), so IN_MOVED_TO is the one event that matters: one per
 * object, when it is there whole. */
static int fs_watch_open(void *impl, const char *bucket, void **out, char *err)
{
    struct fs *f = impl;
    char dir[CONFIG_STR_MAX + 96];
    if (bucket_dir(f, bucket, dir, sizeof dir)) return fr_fail(err, FR_EINVAL, "path too long");
    struct fs_watch *w = calloc(1, sizeof *w);
    if (!w) return fr_fail(err, FR_ENOMEM, "out of memory");
    w->fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (w->fd < 0 || inotify_add_watch(w->fd, dir, IN_MOVED_TO) < 0) {
        int e = errno;
        fs_watch_close(w);
        return fr_fail(err, FR_EIO, "watching %s: %s", dir, strerror(e));
    }
    *out = w;
    return 0;
}

static int fs_watch_next(void *impl, int timeout_ms, char *key, char *err)
{
    struct fs_watch *w = impl;
    for (;;) {
        while (w->off < w->len) {
            struct inotify_event *ev = (struct inotify_event *)(w->buf + w->off);
            w->off += (ssize_t)(sizeof *ev + ev->len);
            if (ev->mask & IN_Q_OVERFLOW) return 0; /* key "": look again at everything */
            if (ev->len && ev->name[0] != '.' && strlen(ev->name) <= STORE_KEY_MAX) {
                strcpy(key, ev->name);
                return 0;
            }
        }
        w->off = w->len = 0;
        ssize_t n = read(w->fd, w->buf, sizeof w->buf);
        if (n > 0) {
            w->len = n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return fr_fail(err, FR_EIO, "reading the watch: %s", strerror(errno));
        if (timeout_ms <= 0) return fr_fail(err, FR_ETIMEOUT, "no arrival");
        struct pollfd p = {w->fd, POLLIN, 0};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno != EINTR) return fr_fail(err, FR_EIO, "poll: %s", strerror(errno));
        if (r == 0) return fr_fail(err, FR_ETIMEOUT, "no arrival");
        timeout_ms = 0; /* readable now: one more read, then return */
    }
}

static int fs_check(void *impl, char *err)
{
    struct fs *f = impl;
    const char *buckets[2] = {f->in, f->out};
    for (int i = 0; i < 2; i++) {
        char dir[CONFIG_STR_MAX + 96];
        if (bucket_dir(f, buckets[i], dir, sizeof dir)) return fr_fail(err, FR_EINVAL, "path too long");
        if (access(dir, R_OK | W_OK | X_OK) != 0)
            return fr_fail(err, FR_EIO, "object store %s: %s", dir, strerror(errno));
    }
    return 0;
}

static void fs_close(void *impl)
{
    free(impl);
}

static const struct store_ops fs_ops = {fs_put,        fs_get,        fs_del,         fs_version,
                                        fs_wait,       fs_watch_open, fs_watch_next, fs_watch_close,
                                        fs_check,      fs_close};

int store_fs_open(const struct config *c, const struct store_ops **ops, void **impl,
                  char err[FR_ERR_LEN])
{
    struct fs *f = calloc(1, sizeof *f);
    if (!f) return fr_fail(err, FR_ENOMEM, "out of memory");
    snprintf(f->root, sizeof f->root, "%s/objects", c->data_dir);
    snprintf(f->in, sizeof f->in, "%s", c->s3_in_bucket);
    snprintf(f->out, sizeof f->out, "%s", c->s3_out_bucket);
    f->sync = !strcmp(c->durability, "power");
    int rc = 0;
    const char *buckets[2] = {f->in, f->out};
    for (int i = 0; i < 2 && !rc; i++) {
        char dir[CONFIG_STR_MAX + 96];
        rc = bucket_dir(f, buckets[i], dir, sizeof dir) ? fr_fail(err, FR_EINVAL, "path too long")
                                                         : mkdir_p(dir, err);
    }
    if (rc) {
        free(f);
        return rc;
    }
    *ops = &fs_ops;
    *impl = f;
    return 0;
}
