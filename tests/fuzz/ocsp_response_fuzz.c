/* Fuzz target: syncd's OCSP response checks (syncd/ocsp.h) read DER from
 * a responder the certificate's owner chose: any bytes must be refused or
 * accepted without a crash, and an accepted answer must be GOOD or REVOKED
 * with nextUpdate not before thisUpdate. The chain below is a throw-away
 * test CA and leaf (AIA http://127.0.0.1:9/); the corpus holds an answer
 * `openssl ocsp` made for it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "syncd/ocsp.h"

static const char CHAIN[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB0TCCAXegAwIBAgICA+kwCgYIKoZIzj0EAwIwEjEQMA4GA1UEAwwHZnV6ei1j\n"
    "YTAeFw0yNjEyMDIxOTAwMjNaFw0yNjEyMDQxOTAwMjNaMBQxEjAQBgNVBAMMCWZ1\n"
    "enotbGVhZjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABB/TLK/p4cQS1w1CO8AA\n"
    "FPvovQFYBEci5fvVW03SNDeXNkTAxHRUC4VpBk9Oy/48g3/zBbBYUnLCqIsE3QvO\n"
    "kiejgbowgbcwCQYDVR0TBAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYI\n"
    "KwYBBQUHAwEwFAYDVR0RBA0wC4IJZnV6ei50ZXN0MC8GCCsGAQUFBwEBBCMwITAf\n"
    "BggrBgEFBQcwAYYTaHR0cDovLzEyNy4wLjAuMTo5LzAdBgNVHQ4EFgQUsisAx/62\n"
    "lw6iE9MtIc7GQEHyTNgwHwYDVR0jBBgwFoAUdVMU+W0SOIGQczy2ENzCM7UbH/8w\n"
    "CgYIKoZIzj0EAwIDSAAwRQIgJGe0JeWX438Dp22fiKGvzxAiGIZA17uEUpsju1xP\n"
    "w1cCIQDpbJHVvjvkZJ2SK7w52eX2YGxNO71RZYa6KOA/mKWxkA==\n"
    "-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBiTCCAS+gAwIBAgIUCZBrTbcxhBvUqDMe7/CTB7Gd6/UwCgYIKoZIzj0EAwIw\n"
    "EjEQMA4GA1UEAwwHZnV6ei1jYTAeFw0yNjEyMDIxOTAwMjNaFw0yNjEyMDUxOTAw\n"
    "MjNaMBIxEDAOBgNVBAMMB2Z1enotY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
    "AAScnnYvd7M11QhH3YrrSyE+BsGFZ/RkEjO60/270yYec6LMRwoeMQPH+U70Lm3p\n"
    "UbSvdcfKElv0+hxylWVT0Mbzo2MwYTAdBgNVHQ4EFgQUdVMU+W0SOIGQczy2ENzC\n"
    "M7UbH/8wHwYDVR0jBBgwFoAUdVMU+W0SOIGQczy2ENzCM7UbH/8wDwYDVR0TAQH/\n"
    "BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDSAAwRQIgB40sNfM9\n"
    "5Td0fWU8v2x+JqrT82qXiJSRAo6YjcC4o8oCIQCdYcaCCEj8KZPdWtyqpEp2hAQY\n"
    "fIsdvRpNFT8luRRA2Q==\n"
    "-----END CERTIFICATE-----\n";

static struct ocsp_target *g_target;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  if (!g_target && ocsp_target_new(CHAIN, strlen(CHAIN), &g_target, err, sizeof(err)) != 0) abort();
  struct ocsp_result r;
  if (ocsp_check_response(g_target, data, size, (int64_t)time(NULL), &r, err, sizeof(err)) == 0) {
    if (r.status != OCSP_STATUS_GOOD && r.status != OCSP_STATUS_REVOKED) abort();
    if (r.next_update && r.next_update < r.this_update) abort();
  }
  return 0;
}
