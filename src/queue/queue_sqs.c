/* queue_sqs.c: the queue on Amazon SQS (or anything that speaks its JSON 1.0 protocol): each
 * operation is a signed POST with X-Amz-Target: AmazonSQS.<Action> and a JSON body. The queue
 * and its dead-letter queue ("<name>-dlq") are created when missing (CreateQueue is idempotent).
 * Dead-lettering is done by the worker: the message is sent to the dead-letter queue, then
 * deleted, so the error result is written whatever redrive policy the queue has. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/backend.h"
#include "util/aws.h"

struct sqs {
    CURL *curl;
    struct aws_endpoint ep;
    struct sigv4_key key;
    char region[64], access[256], secret[256];
    char url[1024], dlq_url[1024];
};

/* Calls Action with the JSON request; on success *out is the parsed response (caller decrefs). */
static int call(struct sqs *q, const char *action, json_t *req, json_t **out, char *err)
{
    *out = NULL;
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body) return fr_fail(err, FR_ENOMEM, "out of memory");
    char target[96];
    snprintf(target, sizeof target, "AmazonSQS.%s", action);
    struct sigv4_header hs[] = {{"content-type", "application/x-amz-json-1.0"},
                                {"x-amz-target", target}};
    struct aws_response r = {0};
    int rc = aws_call(q->curl, &q->ep, &q->key, "POST", "/", "", hs, 2, body, strlen(body),
                      (size_t)1 << 20, &r, err);
    free(body);
    if (!rc && r.status != 200) {
        /* {"__type":"...QueueDoesNotExist","message":"..."} */
        json_t *e = r.error.data ? json_loadb(r.error.data, r.error.len, 0, NULL) : NULL;
        const char *type = e ? json_string_value(json_object_get(e, "__type")) : NULL;
        const char *msg = e ? json_string_value(json_object_get(e, "message")) : NULL;
        if (!msg && e) msg = json_string_value(json_object_get(e, "Message"));
        int code = type && (strstr(type, "ReceiptHandleIsInvalid") || strstr(type, "MessageNotInflight"))
                       ? FR_ENOTFOUND
                       : FR_EBACKEND;
        rc = fr_fail(err, code, "SQS %s: HTTP %ld %s %s", action, r.status, type ? type : "",
                     msg ? msg : "");
        json_decref(e);
    } else if (!rc) {
        json_error_t je;
        *out = json_loadb(r.body.data ? r.body.data : "{}", r.body.data ? r.body.len : 2, 0, &je);
        if (!*out) rc = fr_fail(err, FR_EBACKEND, "SQS %s: unreadable response (%s)", action, je.text);
    }
    aws_response_free(&r);
    return rc;
}

static int create_queue(struct sqs *q, const char *name, char *url, size_t cap, char *err)
{
    json_t *resp;
    int rc = call(q, "CreateQueue", json_pack("{s:s}", "QueueName", name), &resp, err);
    if (rc) return rc;
    const char *u = json_string_value(json_object_get(resp, "QueueUrl"));
    if (!u || strlen(u) >= cap) rc = fr_fail(err, FR_EBACKEND, "SQS CreateQueue: no QueueUrl");
    else snprintf(url, cap, "%s", u);
    json_decref(resp);
    return rc;
}

static int sqs_send_to(struct sqs *q, const char *url, const char *body, int delay_s, char *err)
{
    json_t *resp;
    int rc = call(q, "SendMessage",
                  json_pack("{s:s,s:s,s:i}", "QueueUrl", url, "MessageBody", body, "DelaySeconds", delay_s),
                  &resp, err);
    json_decref(resp);
    return rc;
}

static int sqs_send(void *impl, const char *body, int delay_s, char *err)
{
    struct sqs *q = impl;
    return sqs_send_to(q, q->url, body, delay_s, err);
}

/* SendMessageBatch, ten entries a call (SQS's limit); an entry SQS refuses is sent again alone. */
static int sqs_send_batch(void *impl, const char *const *bodies, int n, int *rcs, char *err)
{
    struct sqs *q = impl;
    int first = 0;
    for (int at = 0; at < n; at += 10) {
        int m = n - at < 10 ? n - at : 10;
        json_t *entries = json_array();
        for (int i = 0; i < m; i++) {
            char id[16];
            snprintf(id, sizeof id, "m%d", i);
            json_array_append_new(entries, json_pack("{s:s,s:s}", "Id", id, "MessageBody", bodies[at + i]));
        }
        json_t *resp;
        int rc = call(q, "SendMessageBatch", json_pack("{s:s,s:o}", "QueueUrl", q->url, "Entries", entries),
                      &resp, err);
        for (int i = 0; i < m; i++)
            rcs[at + i] = rc;
        json_t *failed = rc ? NULL : json_object_get(resp, "Failed");
        size_t k;
        json_t *f;
        json_array_foreach(failed, k, f) {
            const char *id = json_string_value(json_object_get(f, "Id"));
            int i = id && id[0] == 'm' ? atoi(id + 1) : -1;
            if (i >= 0 && i < m) rcs[at + i] = sqs_send_to(q, q->url, bodies[at + i], 0, err);
        }
        json_decref(resp);
        for (int i = 0; i < m && !first; i++)
            first = rcs[at + i];
    }
    return first;
}

static int sqs_receive(void *impl, int wait_s, int visibility_s, struct queue_msg *m, char *err)
{
    struct sqs *q = impl;
    json_t *resp;
    int rc = call(q, "ReceiveMessage",
                  json_pack("{s:s,s:i,s:i,s:i,s:[s,s],s:[s,s]}", "QueueUrl", q->url,
                            "MaxNumberOfMessages", 1, "WaitTimeSeconds", wait_s,
                            "VisibilityTimeout", visibility_s, "AttributeNames",
                            "ApproximateReceiveCount", "SentTimestamp",
                            "MessageSystemAttributeNames", "ApproximateReceiveCount",
                            "SentTimestamp"),
                  &resp, err);
    if (rc) return rc;
    json_t *msgs = json_object_get(resp, "Messages");
    json_t *msg = json_is_array(msgs) ? json_array_get(msgs, 0) : NULL;
    if (!msg) {
        json_decref(resp);
        return fr_fail(err, FR_ETIMEOUT, "no message within %d s", wait_s);
    }
    const char *body = json_string_value(json_object_get(msg, "Body"));
    const char *receipt = json_string_value(json_object_get(msg, "ReceiptHandle"));
    json_t *attrs = json_object_get(msg, "Attributes");
    const char *count = json_string_value(json_object_get(attrs, "ApproximateReceiveCount"));
    const char *sent = json_string_value(json_object_get(attrs, "SentTimestamp"));
    if (!body || !receipt || strlen(receipt) > QUEUE_RECEIPT_MAX) {
        json_decref(resp);
        return fr_fail(err, FR_EBACKEND, "SQS ReceiveMessage: malformed message");
    }
    /* an overlong body cannot be a job of ours: it is cut, and then fails to parse (poison) */
    snprintf(m->body, sizeof m->body, "%s", body);
    snprintf(m->receipt, sizeof m->receipt, "%s", receipt);
    m->receive_count = count ? atoi(count) : 1;
    if (m->receive_count < 1) m->receive_count = 1;
    m->sent_ms = sent ? strtoll(sent, NULL, 10) : 0;
    if (m->sent_ms < 0) m->sent_ms = 0;
    json_decref(resp);
    return 0;
}

static int sqs_del(void *impl, const char *receipt, char *err)
{
    struct sqs *q = impl;
    json_t *resp;
    int rc = call(q, "DeleteMessage", json_pack("{s:s,s:s}", "QueueUrl", q->url, "ReceiptHandle", receipt),
                  &resp, err);
    json_decref(resp);
    return rc;
}

static int sqs_retry(void *impl, const char *receipt, int delay_s, char *err)
{
    struct sqs *q = impl;
    json_t *resp;
    int rc = call(q, "ChangeMessageVisibility",
                  json_pack("{s:s,s:s,s:i}", "QueueUrl", q->url, "ReceiptHandle", receipt,
                            "VisibilityTimeout", delay_s),
                  &resp, err);
    json_decref(resp);
    return rc;
}

static int sqs_dead_letter(void *impl, const struct queue_msg *m, char *err)
{
    struct sqs *q = impl;
    int rc = sqs_send_to(q, q->dlq_url, m->body, 0, err);
    return rc ? rc : sqs_del(impl, m->receipt, err);
}

static long attr(json_t *attrs, const char *name)
{
    const char *v = json_string_value(json_object_get(attrs, name));
    return v ? atol(v) : 0;
}

static int sqs_counts(void *impl, struct queue_counts *c, char *err)
{
    struct sqs *q = impl;
    json_t *resp;
    int rc = call(q, "GetQueueAttributes",
                  json_pack("{s:s,s:[s,s,s]}", "QueueUrl", q->url, "AttributeNames",
                            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                            "ApproximateNumberOfMessagesDelayed"),
                  &resp, err);
    if (rc) return rc;
    json_t *a = json_object_get(resp, "Attributes");
    c->waiting = attr(a, "ApproximateNumberOfMessages");
    c->in_flight = attr(a, "ApproximateNumberOfMessagesNotVisible");
    c->delayed = attr(a, "ApproximateNumberOfMessagesDelayed");
    json_decref(resp);
    rc = call(q, "GetQueueAttributes",
              json_pack("{s:s,s:[s]}", "QueueUrl", q->dlq_url, "AttributeNames",
                        "ApproximateNumberOfMessages"),
              &resp, err);
    if (rc) return rc;
    c->dead = attr(json_object_get(resp, "Attributes"), "ApproximateNumberOfMessages");
    json_decref(resp);
    return 0;
}

static void sqs_close(void *impl)
{
    struct sqs *q = impl;
    curl_easy_cleanup(q->curl);
    free(q);
}

static const struct queue_ops sqs_ops = {sqs_send,  sqs_send_batch,  sqs_receive, sqs_del,
                                         sqs_retry, sqs_dead_letter, sqs_counts,  NULL,
                                         sqs_close};

int queue_sqs_open(const struct config *c, const struct queue_ops **ops, void **impl,
                   char err[FR_ERR_LEN])
{
    if (aws_global_init(err)) return FR_EBACKEND;
    if (!c->aws_access_key_id[0] || !c->aws_secret_access_key[0])
        return fr_fail(err, FR_EINVAL, "the aws backend needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    struct sqs *q = calloc(1, sizeof *q);
    if (!q || !(q->curl = curl_easy_init())) {
        free(q);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    snprintf(q->region, sizeof q->region, "%s", c->aws_region);
    snprintf(q->access, sizeof q->access, "%s", c->aws_access_key_id);
    snprintf(q->secret, sizeof q->secret, "%s", c->aws_secret_access_key);
    q->key = (struct sigv4_key){q->access, q->secret, q->region, "sqs"};
    char host[128], dlq[104];
    snprintf(host, sizeof host, "sqs.%s.amazonaws.com", c->aws_region);
    snprintf(dlq, sizeof dlq, "%s-dlq", c->sqs_req_queue_name);
    int rc = aws_endpoint_parse(c->aws_endpoint_url, host, &q->ep, err);
    if (!rc) rc = create_queue(q, c->sqs_req_queue_name, q->url, sizeof q->url, err);
    if (!rc) rc = create_queue(q, dlq, q->dlq_url, sizeof q->dlq_url, err);
    if (rc) {
        sqs_close(q);
        return rc;
    }
    *ops = &sqs_ops;
    *impl = q;
    return 0;
}
