/* test_config: settings from the environment, defaults, bounds and clear errors. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/config.h"

int main(void)
{
    char err[FR_ERR_LEN];
    struct config c;
    static const char *names[] = {"PORT", "BACKEND", "MATCH_THRESHOLD", "MAX_FILE_MB",
                                  "MIN_WORKERS", "MAX_WORKERS", "S3_IN_BUCKET", "DATA_DIR"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unsetenv(names[i]);
    CHECK(config_load(&c, err) == 0);
    CHECK(c.port == 8000 && !strcmp(c.backend, "embedded") && c.max_file_mb == 8);
    CHECK(!strcmp(c.s3_in_bucket, "input-bucket") && !strcmp(c.s3_out_bucket, "output-bucket"));
    CHECK(!strcmp(c.sqs_req_queue_name, "request-queue") && c.sqs_wait_time_seconds == 10);
    CHECK(c.sqs_visibility_timeout_seconds == 60 && c.max_wait_seconds == 30);
    CHECK(!strcmp(c.aws_region, "us-east-1") && c.aws_endpoint_url[0] == 0);
    CHECK(c.match_threshold > 0.449 && c.match_threshold < 0.451 && c.max_workers == 0);

    setenv("PORT", "9001", 1);
    setenv("BACKEND", "aws", 1);
    setenv("MATCH_THRESHOLD", "0.5", 1);
    CHECK(config_load(&c, err) == 0 && c.port == 9001 && !strcmp(c.backend, "aws"));
    CHECK(c.match_threshold == 0.5);

    setenv("PORT", "70000", 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "PORT") && strstr(err, "range"));
    setenv("PORT", "80x", 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "not a number"));
    setenv("PORT", "80.5", 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "whole"));
    setenv("PORT", "8000", 1);
    setenv("BACKEND", "redis", 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "embedded|aws"));
    setenv("BACKEND", "embedded", 1);
    setenv("MIN_WORKERS", "9", 1);
    setenv("MAX_WORKERS", "3", 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "MIN_WORKERS"));
    unsetenv("MIN_WORKERS");
    unsetenv("MAX_WORKERS");
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    setenv("DATA_DIR", big, 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "too long"));
    setenv("DATA_DIR", "a\tb", 1);
    CHECK(config_load(&c, err) == FR_EINVAL && strstr(err, "control"));
    return check_done();
}
