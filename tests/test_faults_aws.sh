#!/usr/bin/env bash
# test_faults_aws: test_faults.sh on the AWS backend (fauxqs for SQS and S3), with the 10 s outage.
FACEREC_TEST_BACKEND=aws exec bash "$(dirname "$0")/test_faults.sh"
