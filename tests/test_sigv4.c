/* test_sigv4: Signature V4 against the worked example of AWS's documentation (IAM ListUsers),
 * plus URI encoding. The emulator tests check signatures against an independent verifier. */
#include <string.h>

#include "check.h"
#include "util/sigv4.h"

int main(void)
{
    char hash[65];
    sigv4_sha256_hex("", 0, hash);
    CHECK(!strcmp(hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    struct sigv4_header h[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
        {"Host", "iam.amazonaws.com"},
        {"X-Amz-Date", "20150830T123600Z"},
    };
    struct sigv4_request r = {"GET", "/", "Version=2010-05-08&Action=ListUsers", h, 3, hash};
    struct sigv4_key k = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "iam"};
    char auth[SIGV4_AUTH_MAX];
    CHECK(sigv4_sign(&r, &k, "20150830T123600Z", auth) == 0);
    CHECK_MSG(!strcmp(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                            "SignedHeaders=content-type;host;x-amz-date, "
                            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
              "%s", auth);
    char out[64] = "";
    CHECK(sigv4_uri_encode("a b/c~ü", 0, out, sizeof out) > 0 && !strcmp(out, "a%20b%2Fc~%C3%BC"));
    char keep[64] = "/";
    CHECK(sigv4_uri_encode("x/y z", 1, keep, sizeof keep) > 0 && !strcmp(keep, "/x/y%20z"));
    char small[4] = "";
    CHECK(sigv4_uri_encode("abcdef", 0, small, sizeof small) == -1);
    char date[17];
    sigv4_amz_date(0, date);
    CHECK(!strcmp(date, "19700101T000000Z"));
    return check_done();
}
