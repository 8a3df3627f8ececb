#!/usr/bin/env bash
# test_service_aws: test_service.sh on the AWS backend (fauxqs for SQS and S3).
FACEREC_TEST_BACKEND=aws exec bash "$(dirname "$0")/test_service.sh"
