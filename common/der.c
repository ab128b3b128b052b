/*
 * der — the DER walker (see der.h).
 */
#include "common/der.h"

int der_next(struct der *d, uint8_t *tag, struct der *tlv, struct der *val) {
  if (d->n < 2 || (d->p[0] & 0x1f) == 0x1f) return -1; /* empty, or a high tag number */
  size_t len = d->p[1], hl = 2;
  if (len & 0x80) {
    size_t nb = len & 0x7f;
    /* 0x80 is BER's indefinite length; DER never uses more than needed. */
    if (nb == 0 || nb > 3 || d->n < 2 + nb || d->p[2] == 0) return -1;
    len = 0;
    for (size_t i = 0; i < nb; i++) len = (len << 8) | d->p[2 + i];
    if (len < 0x80) return -1;
    hl += nb;
  }
  if (d->n - hl < len) return -1;
  *tag = d->p[0];
  if (tlv) *tlv = (struct der){d->p, hl + len};
  if (val) *val = (struct der){d->p + hl, len};
  d->p += hl + len;
  d->n -= hl + len;
  return 0;
}

int der_expect(struct der *d, uint8_t want, struct der *tlv, struct der *val) {
  if (d->n < 1 || d->p[0] != want) return -1;
  uint8_t tag;
  return der_next(d, &tag, tlv, val);
}

int der_peek(const struct der *d, uint8_t tag) {
  return d->n > 0 && d->p[0] == tag;
}
