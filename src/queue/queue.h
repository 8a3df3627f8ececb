/* queue.h: the job queue: at-least-once delivery with visibility timeouts, on SQLite or SQS.
 *
 * A received message is hidden for a visibility timeout; a worker deletes it when the job is
 * done. If the worker dies, the message becomes visible again and another worker takes it.
 * Each receive counts; the worker moves a message received too often to the dead-letter queue.
 * One interface whatever the backend; a handle is used by one thread at a time (a queue_sender
 * by any number). */
#ifndef FR_QUEUE_QUEUE_H
#define FR_QUEUE_QUEUE_H

#include "util/config.h"
#include "util/err.h"

#define QUEUE_BODY_MAX 1024 /* bytes of a message body; longer ones are refused */
#define QUEUE_RECEIPT_MAX 1024
#define QUEUE_SEND_BATCH_MAX 64 /* messages per backend call of queue_send_batch */

struct queue_msg {
    char body[QUEUE_BODY_MAX + 1];
    char receipt[QUEUE_RECEIPT_MAX + 1]; /* names this receive; stale after a re-receive */
    int receive_count;                   /* including this receive */
    long long sent_ms;                   /* wall-clock ms when first sent; 0 when unknown */
};

struct queue_counts {
    long waiting;   /* visible now */
    long in_flight; /* received and hidden */
    long delayed;   /* sent with a delay, or made visible later by a retry */
    long dead;      /* in the dead-letter queue */
};

struct queue;

/* Opens the configured backend's request queue (and its dead-letter queue), creating them
 * when missing. Returns 0, FR_EIO / FR_EBACKEND with err set. */
int queue_open(const struct config *c, struct queue **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void queue_close(struct queue *q);

/* Sends body (1..QUEUE_BODY_MAX bytes of text), visible after delay_s seconds. */
int queue_send(struct queue *q, const char *body, int delay_s, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Sends n bodies (each as queue_send's, no delay) at once: on SQLite in one transaction, so one
 * commit (and under DURABILITY=power one fsync) for all; on SQS by SendMessageBatch, ten at a
 * time. rcs[i] is 0 or the error of body i. Returns 0 when every body was sent, else the first
 * error, with err set. */
int queue_send_batch(struct queue *q, const char *const *bodies, int n, int *rcs,
                     char err[FR_ERR_LEN]) FR_MUST_USE;

/* Waits up to wait_s seconds for a message and hides it for visibility_s seconds.
 * Returns 0 with *m filled, FR_ETIMEOUT when none came, or a backend error. */
int queue_receive(struct queue *q, int wait_s, int visibility_s, struct queue_msg *m,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

/* Deletes the received message. A stale receipt (the message was received again since) is
 * FR_ENOTFOUND: the message belongs to someone else now. */
int queue_delete(struct queue *q, const char *receipt, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Makes the received message visible again after delay_s seconds (0: now). */
int queue_retry(struct queue *q, const char *receipt, int delay_s,
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* Moves the received message to the dead-letter queue. */
int queue_dead_letter(struct queue *q, const struct queue_msg *m,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

/* Sleeps up to timeout_ms, returning early when the queue may have changed (a message sent by any
 * process), so that the autoscaler sees the first job of a burst at once. On SQS, which cannot
 * tell, it just sleeps. */
void queue_wait_change(struct queue *q, int timeout_ms);

/* Approximate counts, for /health, metrics and the autoscaler. */
int queue_counts(struct queue *q, struct queue_counts *counts, char err[FR_ERR_LEN]) FR_MUST_USE;

/* A sender many threads may use at once, for the API: concurrent sends are gathered into one
 * queue_send_batch (group commit): while one commit runs, the sends that arrive wait, and the
 * first of them then commits them all. A send returns once its message is committed. */
struct queue_sender;

/* Opens the configured queue for sending. Returns 0 or queue_open's errors. */
int queue_sender_open(const struct config *c, struct queue_sender **out,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. No send may be in progress. */
void queue_sender_close(struct queue_sender *s);

/* As queue_send with no delay; safe from any thread. */
int queue_sender_send(struct queue_sender *s, const char *body, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
