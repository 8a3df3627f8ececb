#!/usr/bin/env bash
# test_concurrency_aws: test_concurrency.sh on the AWS backend (fauxqs for SQS and S3).
FACEREC_TEST_BACKEND=aws exec bash "$(dirname "$0")/test_concurrency.sh"
