/* config.h: the one table of settings. Each is read from the environment (the names the original
 * system used), has a default and bounds, and is documented here once: `facerec help config`,
 * .env.example and the README's table are all printed from this table. */
#ifndef FR_UTIL_CONFIG_H
#define FR_UTIL_CONFIG_H

#include <stdio.h>

#include "util/err.h"

#define CONFIG_STR_MAX 512

struct config {
    /* object storage and queue */
    char backend[16]; /* "embedded" or "aws" */
    char data_dir[CONFIG_STR_MAX];
    char aws_endpoint_url[CONFIG_STR_MAX];
    char aws_region[64];
    char aws_access_key_id[256];
    char aws_secret_access_key[256];
    char s3_in_bucket[64];
    char s3_out_bucket[64];
    char sqs_req_queue_name[81];
    char durability[16]; /* "power" or "process" (embedded backend) */
    int sqs_wait_time_seconds;
    int sqs_visibility_timeout_seconds;
    int max_receives;
    /* API */
    char host[64];
    int port;
    int metrics_port;
    int max_wait_seconds;
    int max_file_mb;
    char api_key[256];
    /* recognition */
    char models[CONFIG_STR_MAX];
    double match_threshold;
    int min_face;
    int detect_max_side;
    double min_face_quality;
    int job_timeout_seconds;
    /* workers and scaling */
    int workers;
    int worker_threads;
    int min_workers;
    int max_workers;
    int backlog_per_worker;
    int scale_down_seconds;
    int scale_interval_ms;
    char autoscale_driver[16]; /* "process" or "command" */
    char autoscale_command[CONFIG_STR_MAX];
};

/* Fills c from the defaults and the environment. Returns 0, or FR_EINVAL naming the variable
 * and what is wrong with its value (out of bounds, not a number, too long, not one of ...). */
int config_load(struct config *c, char err[FR_ERR_LEN]) FR_MUST_USE;

/* The defaults alone, ignoring the environment. */
void config_defaults(struct config *c);

enum config_format { CONFIG_HELP, CONFIG_ENV, CONFIG_MARKDOWN };

/* Prints the table: as `facerec help config` text, as a .env file, or as a Markdown table. */
void config_print(FILE *f, enum config_format format);

#endif
