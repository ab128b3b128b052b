/*
 * http1 — llhttp callbacks that collect one message head at a time and
 * check it against the proxy's limits and smuggling rules (see http1.h).
 *
 * The head buffer holds the target (requests) or reason (responses) first,
 * then every field name and value; entries store offsets because the
 * buffer may move while it grows. Pointers are made only at
 * on_headers_complete, when the head can no longer change.
 */
#include "l7proxy/http1.h"

#include "l7proxy/message.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { LAST_NONE = 0, LAST_FIELD, LAST_VALUE, LAST_VALUE_DONE };

static struct h1_parser *from_ll(llhttp_t *ll) {
  return (struct h1_parser *)ll;
}

static int fail(struct h1_parser *p, int status, const char *reason) {
  if (p->error_status == 0) {
    p->error_status = status;
    p->error_reason = reason;
  }
  return -1;
}

static int head_append(struct h1_parser *p, const char *at, size_t n) {
  if (p->head.len + n > p->limits->max_header_bytes) return fail(p, 431, "request head too large");
  if (buf_append(&p->head, at, n) != 0) return fail(p, 500, "out of memory");
  return 0;
}

static int on_message_begin(llhttp_t *ll) {
  struct h1_parser *p = from_ll(ll);
  buf_reset(&p->head);
  p->url_len = p->reason_off = p->reason_len = 0;
  p->n_ents = 0;
  p->last_cb = LAST_NONE;
  p->started = 1;
  p->in_body = 0;
  p->body_seen = 0;
  p->body_limit = 0;
  return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t n) {
  struct h1_parser *p = from_ll(ll);
  if (p->url_len + n > p->limits->max_uri_bytes) return fail(p, 414, "request target too long");
  p->url_len += (uint32_t)n;
  return head_append(p, at, n);
}

static int on_status(llhttp_t *ll, const char *at, size_t n) {
  struct h1_parser *p = from_ll(ll);
  if (p->reason_len == 0) p->reason_off = (uint32_t)p->head.len;
  p->reason_len += (uint32_t)n;
  return head_append(p, at, n);
}

/* The field arrays start small (an idle connection holds 16 entries, not
 * --max-headers) and double up to max_ents. */
static int grow_ents(struct h1_parser *p) {
  size_t cap = p->cap_ents ? p->cap_ents * 2 : 16;
  if (cap > p->max_ents) cap = p->max_ents;
  struct h1_hdr_ent *e = realloc(p->ents, cap * sizeof(*e));
  if (!e) return -1;
  p->ents = e;
  struct h1_header *h = realloc(p->hdrs, cap * sizeof(*h));
  if (!h) return -1;
  p->hdrs = h;
  p->cap_ents = cap;
  return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n) {
  struct h1_parser *p = from_ll(ll);
  if (p->last_cb != LAST_FIELD) {
    if (p->n_ents >= p->max_ents) return fail(p, 431, "too many header fields");
    if (p->n_ents == p->cap_ents && grow_ents(p) != 0) return fail(p, 500, "out of memory");
    struct h1_hdr_ent *e = &p->ents[p->n_ents++];
    e->name_off = (uint32_t)p->head.len;
    e->name_len = e->value_len = 0;
    e->value_off = 0;
    p->last_cb = LAST_FIELD;
  }
  p->ents[p->n_ents - 1].name_len += (uint32_t)n;
  return head_append(p, at, n);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n) {
  struct h1_parser *p = from_ll(ll);
  if (p->last_cb == LAST_VALUE_DONE)
    return fail(p, 400, "obsolete line folding"); /* a value continued on the next line */
  if (p->last_cb == LAST_NONE) return fail(p, 400, "header value without name");
  /* llhttp reports a folded continuation line as more value: a second span
   * that does not continue the previous one where it stopped (or at the
   * start of the next read, when the previous one ran to the end) */
  if (p->last_cb == LAST_VALUE && at != p->value_end &&
      !(at == p->feed_start && p->value_end == p->prev_feed_end))
    return fail(p, 400, "obsolete line folding");
  p->value_end = at + n;
  struct h1_hdr_ent *e = &p->ents[p->n_ents - 1];
  if (p->last_cb == LAST_FIELD) e->value_off = (uint32_t)p->head.len;
  p->last_cb = LAST_VALUE;
  e->value_len += (uint32_t)n;
  return head_append(p, at, n);
}

static int on_header_value_complete(llhttp_t *ll) {
  struct h1_parser *p = from_ll(ll);
  if (p->last_cb == LAST_FIELD) { /* empty value: no on_header_value call */
    p->ents[p->n_ents - 1].value_off = (uint32_t)p->head.len;
  }
  p->last_cb = LAST_VALUE_DONE;
  return 0;
}

/* RFC 9110 tchar, as a table: checked for every byte of every field name. */
static unsigned char tchar[256];

static void init_tchar(void) {
  for (int c = 0; c < 256; c++)
    tchar[c] = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
               (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Splits an absolute-form target into host and origin-form target. */
static int split_absolute(const char *url, size_t len, struct h1_message *m) {
  size_t skip;
  if (len >= 7 && strncasecmp(url, "http://", 7) == 0)
    skip = 7;
  else if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
    skip = 8;
  else
    return -1;
  const char *auth = url + skip;
  size_t rest = len - skip, i = 0;
  while (i < rest && auth[i] != '/' && auth[i] != '?' && auth[i] != '#') i++;
  if (i == 0) return -1;
  for (size_t j = 0; j < i; j++)
    if (auth[j] == '@') return -1; /* userinfo is not allowed in http(s) URIs */
  m->host = auth;
  m->host_len = i;
  if (i < rest && auth[i] == '/') {
    m->target = auth + i;
    m->target_len = rest - i;
  } else {
    /* "http://h" or "http://h?q": path is "/"; a query needs the slash, so
     * the caller sees "/" only (the query of such a target is dropped). */
    m->target = "/";
    m->target_len = 1;
  }
  return 0;
}

/* Transfer-Encoding of a message: every coding in order. Requests: one
 * final chunked and nothing else (RFC 9112 §6.1: another coding → 501,
 * chunked not last or twice → 400). Responses: the codings before a final
 * chunked (or all of them) are returned to be kept. 0 or a status. */
static int check_te(const struct h1_parser *p, const struct h1_header *te, size_t n_te,
                    struct h1_message *m) {
  if (n_te == 0) return 0;
  if (p->kind == H1_RESPONSE) {
    if (n_te > 1) return 502;
    const char *v = te[0].value;
    size_t len = te[0].value_len;
    size_t end = len;
    while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
    if (end >= 7 && headers_name_is(v + end - 7, 7, "chunked")) {
      end -= 7;
      while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t' || v[end - 1] == ',')) end--;
    }
    m->te_codings = v;
    m->te_codings_len = end;
    return 0;
  }
  int chunked = 0, other = 0, last_chunked = 0;
  for (size_t i = 0; i < n_te; i++) {
    const char *v = te[i].value, *e = v + te[i].value_len;
    while (v < e) {
      while (v < e && (*v == ' ' || *v == '\t' || *v == ',')) v++;
      const char *t = v;
      while (v < e && *v != ',') v++;
      const char *te_end = v;
      while (te_end > t && (te_end[-1] == ' ' || te_end[-1] == '\t')) te_end--;
      if (te_end == t) continue;
      last_chunked = headers_name_is(t, (size_t)(te_end - t), "chunked");
      if (last_chunked)
        chunked++;
      else
        other++;
    }
  }
  if (!last_chunked || chunked > 1) return 400;
  return other ? 501 : 0;
}

static int on_headers_complete(llhttp_t *ll) {
  struct h1_parser *p = from_ll(ll);
  struct h1_message m;
  memset(&m, 0, sizeof(m));
  int host_seen = 0;
  struct h1_header te[4];
  size_t n_te = 0;
  if (ll->http_major != 1) return fail(p, 505, "HTTP version not supported");
  for (size_t i = 0; i < p->n_ents; i++) {
    struct h1_hdr_ent *e = &p->ents[i];
    struct h1_header *h = &p->hdrs[i];
    h->name = p->head.data + e->name_off;
    h->name_len = e->name_len;
    h->value = e->value_len ? p->head.data + e->value_off : "";
    h->value_len = e->value_len;
    char *lower = p->head.data + e->name_off; /* names are lower case from here on */
    for (size_t j = 0; j < h->name_len; j++) {
      unsigned char c = (unsigned char)lower[j];
      if (!tchar[c]) return fail(p, 400, "bad header name");
      if (c >= 'A' && c <= 'Z') lower[j] = (char)(c + 32);
    }
    while (h->value_len > 0 &&
           (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
      h->value_len--;
    if (headers_name_is(h->name, h->name_len, "transfer-encoding")) {
      if (n_te == sizeof(te) / sizeof(te[0])) return fail(p, 400, "too many Transfer-Encoding");
      te[n_te++] = *h;
    }
    if (p->kind == H1_REQUEST) {
      if (headers_name_is(h->name, h->name_len, "host")) {
        if (host_seen++) return fail(p, 400, "more than one Host");
        m.host = h->value;
        m.host_len = h->value_len;
      } else if (headers_name_is(h->name, h->name_len, "expect")) {
        if (headers_name_is(h->value, h->value_len, "100-continue"))
          m.expect_continue = 1;
        else
          return fail(p, 417, "unsupported expectation");
      }
    }
  }
  int te_status = check_te(p, te, n_te, &m);
  if (te_status) return fail(p, te_status, "unsupported Transfer-Encoding");
  m.headers = p->hdrs;
  m.n_headers = p->n_ents;
  m.http_major = ll->http_major;
  m.http_minor = ll->http_minor;
  m.keep_alive = llhttp_should_keep_alive(ll);
  m.upgrade = ll->upgrade;
  if (ll->flags & F_CHUNKED) {
    m.framing = H1_FRAMING_CHUNKED;
  } else if (ll->flags & F_CONTENT_LENGTH) {
    m.framing = H1_FRAMING_LENGTH; /* also for 0: the peer must see "Content-Length: 0" */
    m.content_length = ll->content_length;
  } else if (ll->flags & F_TRANSFER_ENCODING) {
    if (p->kind == H1_REQUEST) return fail(p, 400, "Transfer-Encoding without chunked");
    m.framing = H1_FRAMING_CLOSE;
  } else if (p->kind == H1_RESPONSE) {
    int s = ll->status_code;
    m.framing = (s < 200 || s == 204 || s == 304) ? H1_FRAMING_NONE : H1_FRAMING_CLOSE;
  }
  if (p->kind == H1_REQUEST) {
    if (ll->method == HTTP_CONNECT) return fail(p, 405, "CONNECT is not supported");
    m.method = ll->method;
    m.method_str = llhttp_method_name((llhttp_method_t)ll->method);
    m.method_len = strlen(m.method_str);
    const char *url = p->head.data;
    size_t url_len = p->url_len;
    if (url_len > 0 && url[0] != '/' && url[0] != '*') {
      if (split_absolute(url, url_len, &m) != 0) return fail(p, 400, "bad request target");
    } else {
      if (url_len == 0) return fail(p, 400, "empty request target");
      m.target = url;
      m.target_len = url_len;
      if (!host_seen && (m.http_major > 1 || m.http_minor >= 1))
        return fail(p, 400, "missing Host");
    }
    if (!m.host) {
      m.host = "";
      m.host_len = 0;
    }
    m.path_len = m.target_len;
    const char *q = memchr(m.target, '?', m.target_len);
    if (q) m.path_len = (size_t)(q - m.target);
    if (m.http_major == 1 && m.http_minor == 0) m.expect_continue = 0;
  } else {
    m.status = ll->status_code;
    m.reason = p->reason_len ? p->head.data + p->reason_off : "";
    m.reason_len = p->reason_len;
    m.upgrade = ll->upgrade && ll->status_code == 101;
  }
  int rc = p->cb.on_head ? p->cb.on_head(p->ud, &m) : 0;
  if (rc >= 400) return fail(p, rc, "rejected");
  if (rc < 0) return fail(p, 500, "aborted");
  p->in_body = 1;
  p->n_head_ents = p->n_ents;
  if (p->limits->max_body_bytes && p->body_limit == 0 && p->kind == H1_REQUEST)
    p->body_limit = p->limits->max_body_bytes;
  if (p->kind == H1_REQUEST && p->body_limit && m.framing == H1_FRAMING_LENGTH &&
      m.content_length > p->body_limit)
    return fail(p, 413, "body too large");
  /* 1xx, 204 and 304 never have a body, whatever their framing headers
   * say (RFC 9112 §6.3); llhttp would read a chunked one */
  int st = ll->status_code;
  if (p->kind == H1_RESPONSE && st != 101 && (st < 200 || st == 204 || st == 304))
    rc = H1_SKIP_BODY;
  return rc == H1_SKIP_BODY ? 1 : 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t n) {
  struct h1_parser *p = from_ll(ll);
  p->body_seen += n;
  if (p->body_limit && p->body_seen > p->body_limit) return fail(p, 413, "body too large");
  if (p->cb.on_body && p->cb.on_body(p->ud, at, n) < 0) return fail(p, 500, "aborted");
  return 0;
}

static int on_message_complete(llhttp_t *ll) {
  struct h1_parser *p = from_ll(ll);
  if (p->in_body && p->n_ents > p->n_head_ents && p->cb.on_trailers) {
    size_t n = 0;
    for (size_t i = p->n_head_ents; i < p->n_ents; i++) {
      struct h1_hdr_ent *e = &p->ents[i];
      char *name = p->head.data + e->name_off;
      for (size_t j = 0; j < e->name_len; j++)
        if (name[j] >= 'A' && name[j] <= 'Z') name[j] = (char)(name[j] + 32);
      p->hdrs[n++] = (struct h1_header){
          name, e->name_len, e->value_len ? p->head.data + e->value_off : "", e->value_len};
    }
    p->cb.on_trailers(p->ud, p->hdrs, n);
  }
  p->started = 0;
  p->in_body = 0;
  if (p->cb.on_complete) p->cb.on_complete(p->ud);
  /* An upgrade pauses by itself (HPE_PAUSED_UPGRADE); so does a 1xx
   * interim response, which is not the end of the exchange. */
  if (ll->upgrade) return 0;
  return HPE_PAUSED;
}

static llhttp_settings_t settings_;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void init_settings(void) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_status = on_status;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_header_value_complete = on_header_value_complete;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  init_tchar();
}

static const llhttp_settings_t *settings(void) {
  pthread_once(&settings_once, init_settings);
  return &settings_;
}

void h1_message_head(const struct h1_message *m, const char *scheme, struct msg_head *out) {
  memset(out, 0, sizeof(*out));
  out->headers = m->headers;
  out->n_headers = m->n_headers;
  out->content_length = m->framing == H1_FRAMING_LENGTH ? (int64_t)m->content_length : -1;
  out->end_stream =
      m->framing == H1_FRAMING_NONE || (m->framing == H1_FRAMING_LENGTH && m->content_length == 0);
  if (scheme) {
    out->method = msg_method_of(m->method_str, m->method_len);
    out->method_str = m->method_str;
    out->method_len = m->method_len;
    out->scheme = scheme;
    out->authority = m->host;
    out->authority_len = m->host_len;
    out->target = m->target;
    out->target_len = m->target_len;
    out->path_len = m->path_len;
    if (m->expect_continue) out->flags |= MSG_F_EXPECT_CONTINUE;
    if (m->http_minor == 0) out->flags |= MSG_F_HTTP10;
    if (m->upgrade) out->flags |= MSG_F_UPGRADE;
    const struct msg_header *ct = msg_find(out, "content-type");
    if (ct && ct->value_len >= 16 && strncasecmp(ct->value, "application/grpc", 16) == 0)
      out->flags |= MSG_F_GRPC;
  } else {
    out->status = m->status;
    out->te_codings = m->te_codings;
    out->te_codings_len = m->te_codings_len;
  }
}

int h1_parser_init(struct h1_parser *p, enum h1_kind kind, const struct l7_limits *limits,
                   const struct h1_callbacks *cb, void *ud) {
  memset(p, 0, sizeof(*p));
  llhttp_init(&p->ll, kind == H1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, settings());
  p->kind = kind;
  p->limits = limits;
  p->cb = *cb;
  p->ud = ud;
  p->max_ents = limits->max_headers ? limits->max_headers : 100;
  if (grow_ents(p) != 0) {
    h1_parser_free(p);
    return -ENOMEM;
  }
  return 0;
}

void h1_parser_free(struct h1_parser *p) {
  free(p->ents);
  free(p->hdrs);
  p->ents = NULL;
  p->hdrs = NULL;
  buf_free(&p->head);
}

enum h1_result h1_parser_feed(struct h1_parser *p, const char *data, size_t len, size_t *consumed) {
  if (p->error_status) {
    *consumed = 0;
    return H1_ERROR;
  }
  p->prev_feed_end = p->feed_end;
  p->feed_start = data;
  p->feed_end = data + len;
  llhttp_errno_t err = llhttp_execute(&p->ll, data, len);
  const char *pos = llhttp_get_error_pos(&p->ll);
  switch (err) {
    case HPE_OK:
      *consumed = len;
      return H1_MORE;
    case HPE_PAUSED:
      *consumed = pos ? (size_t)(pos - data) : len;
      return H1_MESSAGE_END;
    case HPE_PAUSED_UPGRADE:
      *consumed = pos ? (size_t)(pos - data) : len;
      return H1_UPGRADE;
    default:
      *consumed = pos && pos >= data && pos <= data + len ? (size_t)(pos - data) : len;
      if (p->error_status == 0 && err == HPE_INVALID_VERSION) {
        p->error_status = 505;
        p->error_reason = "HTTP version not supported";
      }
      if (p->error_status == 0) {
        p->error_status = 400;
        p->error_reason = llhttp_get_error_reason(&p->ll);
        if (!p->error_reason) p->error_reason = llhttp_errno_name(err);
      }
      return H1_ERROR;
  }
}

enum h1_result h1_parser_finish(struct h1_parser *p) {
  if (p->error_status) return H1_ERROR;
  int was_started = p->started;
  llhttp_errno_t err = llhttp_finish(&p->ll);
  if (err == HPE_PAUSED || (err == HPE_OK && was_started && !p->started)) return H1_MESSAGE_END;
  if (err == HPE_OK) return was_started ? H1_ERROR : H1_MORE;
  p->error_status = 400;
  p->error_reason = "connection closed inside a message";
  return H1_ERROR;
}

void h1_parser_resume(struct h1_parser *p) {
  if (llhttp_get_errno(&p->ll) == HPE_PAUSED) llhttp_resume(&p->ll);
}

void h1_parser_set_body_limit(struct h1_parser *p, uint64_t limit) {
  p->body_limit = limit;
}

int h1_parser_in_message(const struct h1_parser *p) {
  return p->started;
}

int h1_parser_in_body(const struct h1_parser *p) {
  return p->in_body;
}

int h1_parser_error_status(const struct h1_parser *p) {
  return p->error_status;
}

const char *h1_parser_error_reason(const struct h1_parser *p) {
  return p->error_reason ? p->error_reason : "";
}
