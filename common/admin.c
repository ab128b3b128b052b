/*
 * admin — a tiny HTTP/1.1 server for /healthz, /readyz, /metrics and
 * daemon-specific paths, on the daemon's libuv loop.
 *
 * One request per connection: read the request head (at most 8 KiB, 5 s),
 * answer with Connection: close, shut down, close. The head is parsed by
 * hand and strictly (request line with single spaces, origin-form target,
 * HTTP/1.0 or 1.1, well-formed header lines); anything else gets 400.
 * Only GET and HEAD are served (405 otherwise), unknown paths get 404.
 *
 * Invariants: everything runs on the loop thread except admin_set_ready /
 * admin_set_draining, which are atomics and may be called from any
 * thread (a signal-handling thread, a gRPC callback). A connection owns
 * two handles (tcp, timer) and is freed when both have closed; the
 * server is freed when its listener and every connection have closed,
 * then admin_close's callback runs.
 */
#include "common/admin.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/http_status.h"
#include "common/log.h"
#include "common/metrics.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_READ_TIMEOUT_MS 5000

struct handler {
  char *path;
  admin_handler_fn fn;
  void *ud;
};

struct admin_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  struct admin_server *server;
  struct admin_conn *prev, *next;
  char head[ADMIN_HEAD_MAX];
  size_t len;
  char *out; /* response head + body, freed with the connection */
  int open_handles;
  int responded;
  int closing;
};

struct admin_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct metrics_registry *metrics;
  struct handler *handlers;
  size_t nhandlers;
  struct admin_conn *conns;
  atomic_int ready;
  atomic_int draining;
  int open_handles; /* listener + connections */
  int closing;
  void (*done)(void *arg);
  void *done_arg;
};

static void server_maybe_done(struct admin_server *a) {
  if (!a->closing || a->open_handles > 0) return;
  void (*done)(void *) = a->done;
  void *arg = a->done_arg;
  for (size_t i = 0; i < a->nhandlers; i++) free(a->handlers[i].path);
  free(a->handlers);
  free(a);
  if (done) done(arg);
}

static void conn_handle_closed(uv_handle_t *h) {
  struct admin_conn *c = h->data;
  if (--c->open_handles > 0) return;
  struct admin_server *a = c->server;
  if (c->prev)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c->out);
  free(c);
  a->open_handles--;
  server_maybe_done(a);
}

static void conn_close(struct admin_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  conn_close(req->data);
}

static void on_write(uv_write_t *req, int status) {
  struct admin_conn *c = req->data;
  if (status < 0 || c->closing) {
    conn_close(c);
    return;
  }
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

/* Sends the response and closes. Takes ownership of body (malloc'd or NULL). */
static void conn_respond(struct admin_conn *c, int status, const char *content_type, char *body,
                         size_t body_len, int head_only) {
  if (c->responded || c->closing) {
    free(body);
    return;
  }
  c->responded = 1;
  uv_timer_stop(&c->timer);
  uv_read_stop((uv_stream_t *)&c->tcp);
  char head[512];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                   "Connection: close\r\n\r\n",
                   status, http_status_reason(status), content_type ? content_type : "text/plain",
                   body_len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
  size_t send_body = head_only ? 0 : body_len;
  c->out = malloc((size_t)n + send_body + 1);
  if (c->out == NULL) {
    free(body);
    conn_close(c);
    return;
  }
  memcpy(c->out, head, (size_t)n);
  if (send_body) memcpy(c->out + n, body, send_body);
  free(body);
  uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)n + send_body));
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) conn_close(c);
}

static void conn_respond_text(struct admin_conn *c, int status, const char *text, int head_only) {
  char *body = strdup(text);
  conn_respond(c, status, "text/plain", body, body ? strlen(text) : 0, head_only);
}

static int is_tchar(char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Validates header lines in [p, end): "name: value" CRLF each. */
static int headers_valid(const char *p, const char *end) {
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL) return 0;
    const char *le = (eol > p && eol[-1] == '\r') ? eol - 1 : eol;
    if (le == p) return 1; /* blank line ends the head */
    const char *q = p;
    while (q < le && is_tchar(*q)) q++;
    if (q == p || q >= le || *q != ':') return 0;
    for (q++; q < le; q++) {
      unsigned char ch = (unsigned char)*q;
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return 0;
    }
    p = eol + 1;
  }
  return 0;
}

static void dispatch(struct admin_conn *c, const struct admin_request *req) {
  struct admin_server *a = c->server;
  int head_only = strcmp(req->method, "HEAD") == 0;
  if (!head_only && strcmp(req->method, "GET") != 0) {
    conn_respond_text(c, 405, "method not allowed\n", 0);
    return;
  }
  const char *path = req->path, *query = req->query;
  for (size_t i = 0; i < a->nhandlers; i++) {
    if (strcmp(a->handlers[i].path, path) != 0) continue;
    struct admin_response resp = {.status = 200};
    a->handlers[i].fn(a->handlers[i].ud, path, query, &resp);
    conn_respond(c, resp.status ? resp.status : 200, resp.content_type, resp.body,
                 resp.body ? resp.body_len : 0, head_only);
    return;
  }
  if (strcmp(path, "/healthz") == 0) {
    conn_respond_text(c, 200, "ok\n", head_only);
  } else if (strcmp(path, "/readyz") == 0) {
    if (atomic_load(&a->draining))
      conn_respond_text(c, 503, "draining\n", head_only);
    else if (!atomic_load(&a->ready))
      conn_respond_text(c, 503, "not ready\n", head_only);
    else
      conn_respond_text(c, 200, "ready\n", head_only);
  } else if (strcmp(path, "/metrics") == 0 && a->metrics) {
    size_t len = 0;
    char *text = metrics_render(a->metrics, &len);
    if (text == NULL)
      conn_respond_text(c, 500, "out of memory\n", head_only);
    else
      conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, head_only);
  } else {
    conn_respond_text(c, 404, "not found\n", head_only);
  }
}

/* Length of the head (through the blank line) or 0 when incomplete. */
static size_t head_end(const char *buf, size_t len) {
  for (size_t i = 0; i + 1 < len; i++) {
    if (buf[i] != '\n') continue;
    if (buf[i + 1] == '\n') return i + 2;
    if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return 0;
}

int admin_parse_request(char *buf, size_t len, struct admin_request *out) {
  size_t headlen = head_end(buf, len);
  if (headlen == 0) return ADMIN_PARSE_INCOMPLETE;
  char *p = buf, *end = buf + headlen;
  char *eol = memchr(p, '\n', headlen);
  char *le = (eol > p && eol[-1] == '\r') ? eol - 1 : eol;
  /* METHOD SP TARGET SP HTTP/1.x, single spaces. */
  char *sp1 = memchr(p, ' ', (size_t)(le - p));
  char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
  int ok = sp1 && sp2 && sp1 > p && sp2 > sp1 + 1 && sp1[1] == '/';
  if (ok) {
    for (char *q = p; q < sp1; q++) ok = ok && is_tchar(*q);
    for (char *q = sp1 + 1; q < sp2; q++) ok = ok && (unsigned char)*q > 0x20 && *q != 0x7f;
    size_t vlen = (size_t)(le - sp2 - 1);
    ok = ok && vlen == 8 &&
         (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0 || memcmp(sp2 + 1, "HTTP/1.0", 8) == 0);
  }
  if (!ok || !headers_valid(eol + 1, end)) return ADMIN_PARSE_BAD;
  *sp1 = '\0';
  *sp2 = '\0';
  char *q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
  out->query = "";
  if (q) {
    *q = '\0';
    out->query = q + 1;
  }
  out->method = p;
  out->path = sp1 + 1;
  out->head_len = headlen;
  return ADMIN_PARSE_OK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct admin_conn *c = h->data;
  size_t room = sizeof(c->head) - c->len;
  *buf = uv_buf_init(c->head + c->len, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct admin_conn *c = s->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->responded) return;
  c->len += (size_t)nread;
  struct admin_request req;
  int rc = admin_parse_request(c->head, c->len, &req);
  if (rc == ADMIN_PARSE_OK) {
    dispatch(c, &req);
  } else if (rc == ADMIN_PARSE_BAD) {
    LOG_DEBUG("admin_bad_request", "%s", "");
    conn_respond_text(c, 400, "bad request\n", 0);
  } else if (c->len >= sizeof(c->head)) {
    conn_respond_text(c, 431, "request head too large\n", 0);
  }
}

static void on_timeout(uv_timer_t *t) {
  struct admin_conn *c = t->data;
  conn_respond_text(c, 408, "request timeout\n", 0);
}

static void on_connection(uv_stream_t *listener, int status) {
  struct admin_server *a = listener->data;
  if (status < 0 || a->closing) return;
  struct admin_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return;
  c->server = a;
  uv_tcp_init(a->loop, &c->tcp);
  uv_timer_init(a->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  a->open_handles++;
  c->next = a->conns;
  if (a->conns) a->conns->prev = c;
  a->conns = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_timeout, ADMIN_READ_TIMEOUT_MS, 0);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

/* ADDR:PORT, where an empty host or "*" means every address and "localhost" 127.0.0.1. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss) {
  char host[256];
  uint16_t port;
  socklen_t len;
  if (addr_split_hostport(listen, host, sizeof(host), &port) != 0) return -1;
  if (host[0] == '\0' || strcmp(host, "*") == 0) snprintf(host, sizeof(host), "0.0.0.0");
  if (strcasecmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
  return addr_from_ip(host, port, ss, &len);
}

static void on_listener_closed_early(uv_handle_t *h) {
  free(h->data);
}

int admin_start(uv_loop_t *loop, const char *listen, struct metrics_registry *metrics,
                struct admin_server **out, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  *out = NULL;
  if (listen == NULL || parse_listen(listen, &ss) != 0) {
    snprintf(err, errlen, "admin: bad listen address (want ADDR:PORT): %s",
             listen ? listen : "(null)");
    return -1;
  }
  struct admin_server *a = calloc(1, sizeof(*a));
  if (a == NULL) {
    snprintf(err, errlen, "admin: out of memory");
    return -1;
  }
  a->loop = loop;
  a->metrics = metrics;
  a->listener.data = a;
  int rc = uv_tcp_init(loop, &a->listener);
  if (rc != 0) {
    free(a);
    snprintf(err, errlen, "admin: %s", uv_strerror(rc));
    return -1;
  }
  rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "admin: cannot listen on %s: %s", listen, uv_strerror(rc));
    uv_close((uv_handle_t *)&a->listener, on_listener_closed_early);
    return -1;
  }
  a->open_handles = 1;
  *out = a;
  LOG_INFO("admin_listening", "addr=%s port=%d", log_q(listen), admin_port(a));
  return 0;
}

int admin_port(const struct admin_server *a) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
  return addr_port(&ss);
}

int admin_handle(struct admin_server *a, const char *path, admin_handler_fn fn, void *ud) {
  if (path == NULL || path[0] != '/' || fn == NULL) return -1;
  for (size_t i = 0; i < a->nhandlers; i++) {
    if (strcmp(a->handlers[i].path, path) == 0) {
      a->handlers[i].fn = fn;
      a->handlers[i].ud = ud;
      return 0;
    }
  }
  struct handler *h = realloc(a->handlers, (a->nhandlers + 1) * sizeof(*h));
  if (h == NULL) return -1;
  a->handlers = h;
  char *copy = strdup(path);
  if (copy == NULL) return -1;
  h[a->nhandlers++] = (struct handler){.path = copy, .fn = fn, .ud = ud};
  return 0;
}

void admin_set_ready(struct admin_server *a, int ready) {
  atomic_store(&a->ready, ready != 0);
}

void admin_set_draining(struct admin_server *a, int draining) {
  atomic_store(&a->draining, draining != 0);
}

static void on_listener_closed(uv_handle_t *h) {
  struct admin_server *a = h->data;
  a->open_handles--;
  server_maybe_done(a);
}

void admin_close(struct admin_server *a, void (*done)(void *arg), void *arg) {
  if (a == NULL || a->closing) return;
  a->closing = 1;
  a->done = done;
  a->done_arg = arg;
  for (struct admin_conn *c = a->conns; c; c = c->next) conn_close(c);
  uv_close((uv_handle_t *)&a->listener, on_listener_closed);
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

int admin_query_get(const char *query, const char *key, char *out, size_t outlen) {
  if (query == NULL || key == NULL || out == NULL || outlen == 0) return -1;
  size_t klen = strlen(key);
  const char *p = query;
  while (*p) {
    const char *amp = strchr(p, '&');
    const char *pend = amp ? amp : p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(pend - p));
    const char *kend = eq ? eq : pend;
    if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
      size_t o = 0;
      for (const char *v = eq ? eq + 1 : pend; v < pend; v++) {
        int ch = (unsigned char)*v;
        if (ch == '+') {
          ch = ' ';
        } else if (ch == '%') {
          if (pend - v < 3) return -1;
          int hi = hexval(v[1]), lo = hexval(v[2]);
          if (hi < 0 || lo < 0) return -1;
          ch = hi * 16 + lo;
          if (ch == 0) return -1;
          v += 2;
        }
        if (o + 1 >= outlen) return -1;
        out[o++] = (char)ch;
      }
      out[o] = '\0';
      return 0;
    }
    p = amp ? amp + 1 : pend;
  }
  return -1;
}

void admin_reply(struct admin_response *resp, int status, const char *content_type,
                 const char *text) {
  resp->status = status;
  resp->content_type = content_type;
  resp->body = text ? strdup(text) : NULL;
  resp->body_len = resp->body ? strlen(resp->body) : 0;
}
