/*
 * default_cert — load the operator's default certificate; whether a pair
 * can be served is common/cert_valid's decision (the proxies' own).
 *
 * The private key is only ever handled as PEM text in memory and never
 * logged.
 */
#include "syncd/default_cert.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert_valid.h"
#include "common/fileio.h"

int default_cert_load(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                      char *err, size_t errlen) {
  size_t cl, kl;
  char why[256];
  *cert_pem = *key_pem = NULL;
  int rc = fileio_read(cert_file, 1u << 24, cert_pem, &cl, NULL, 0);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read %s: %s", cert_file, strerror(-rc));
    return rc;
  }
  rc = fileio_read(key_file, 1u << 24, key_pem, &kl, NULL, 0);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read %s: %s", key_file, strerror(-rc));
    free(*cert_pem);
    *cert_pem = NULL;
    return rc;
  }
  if (cert_valid_check((const uint8_t *)*cert_pem, cl, (const uint8_t *)*key_pem, kl, NULL, why,
                       sizeof(why)) != 0) {
    snprintf(err, errlen, "default certificate %s / %s: %s", cert_file, key_file, why);
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
    return -EINVAL;
  }
  return 0;
}
