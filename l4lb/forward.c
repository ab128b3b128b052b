/*
 * forward — workers, listeners and the per-connection byte mover. See
 * forward.h for the connection lifecycle.
 *
 * Invariants:
 *  - A connection is touched only by the worker thread that accepted it.
 *  - c->snap is held only while connecting; c->be (one reference) from a
 *    successful connect until the connection is freed.
 *  - A connection is freed only from the close callback of its last open
 *    libuv handle (pending_closes reaches 0); fds are closed right after
 *    uv_close (which has already removed them from epoll).
 *  - In a direction, `queued` bytes sit in the pipe (or the buffer); the
 *    source is read only while !src_eof && !full, so memory per direction
 *    is bounded by the pipe (64 KiB) or the buffer (L4_BUF_SIZE).
 *  - A direction copies through its buffer until bulk data shows up, then
 *    splices (see pump); it switches only with an empty buffer.
 *  - A connection is on its worker's silent list (oldest first) from accept
 *    until a byte is read from either side; it never returns to it. Under
 *    descriptor pressure (at max_connections, or accept/socket failing with
 *    EMFILE/ENFILE) the oldest silent connection is closed to make room
 *    (evict_silent), after a MSG_PEEK shows nothing waiting on its sockets:
 *    a connection that has carried data is never evicted.
 */
#include "l4lb/forward.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/proxy_proto.h"
#include "l4lb/backend.h"

#define L4_BUF_SIZE (16 * 1024)
#define L4_SPLICE_CHUNK (1024 * 1024)
#define L4_ACCEPT_BATCH 64
#define L4_ACCEPT_PAUSE_MS 100
#define L4_PIPE_POOL 64

static atomic_uint_fast64_t active_connections;
static atomic_uint_fast64_t fd_exhausted_at_ms;

struct l4_dir {
  int splicing;       /* this direction moves bytes with splice(2) */
  int pipe_r, pipe_w; /* splice mode */
  char *buf;          /* read/write mode */
  size_t off, len;
  size_t queued;
  int src_eof; /* source said EOF */
  int full;    /* do not read the source until the pipe drains */
  int shut;    /* shutdown(SHUT_WR) sent to the destination */
};

enum conn_phase { PHASE_CONNECTING, PHASE_HEADER, PHASE_STREAMING, PHASE_CLOSING };

struct l4_worker;

/*
 * A connection socket watched on the worker's own epoll set (one uv_poll
 * on that epoll fd in the libuv loop). Cheaper than a uv_poll per socket:
 * uv_poll_init probes every fd with three syscalls and its close costs
 * epoll_ctl DELs, on every connection; here a socket costs one ADD and a
 * MOD per interest change, and close(2) drops it from the set. events is
 * the registered UV_READABLE|UV_WRITABLE mask (0: not in the set); fd -1
 * once closed, so an event already fetched in the same batch is ignored.
 */
struct l4_io;
typedef void (*l4_io_cb)(struct l4_io *io, int status, int events);
struct l4_io {
  int fd;
  int events;
  l4_io_cb cb;
  void *data;
};

struct l4_conn {
  struct l4_worker *w;
  struct l4_conn *prev, *next;
  struct l4_conn *sprev, *snext; /* the worker's silent list (silent: on it) */
  int silent;
  int evicted; /* closed by evict_silent: already uncounted from the active */
  enum conn_phase phase;
  int cfd, bfd;
  struct l4_io cpoll, bpoll; /* on the worker's epoll set */
  uv_timer_t timer;          /* connect + PROXY header, then idle */
  uint64_t last_active;      /* loop ms of the last byte moved (streaming) */
  int cev, bev;              /* poll interest currently registered */
  int pending_closes;
  int use_splice; /* splice allowed (--splice and the sockets accept it) */

  struct sockaddr_storage src, dst;
  struct l4_snapshot *snap;
  uint32_t slot;
  int https; /* accepted on an https listener: connect to https_addr */
  struct l4_backend *tried[L4_MAX_TRIES];
  int ntries;
  struct l4_backend *be;

  uint8_t hdr[PROXY_PROTO_V2_HDR_LEN + 216];
  size_t hdr_len, hdr_off;
  struct l4_dir up;   /* client -> backend */
  struct l4_dir down; /* backend -> client */
};

struct l4_listener {
  struct l4_worker *w;
  int fd;
  int https; /* forwards to the backends' https_address */
  /* the bound address when it is a specific one (not a wildcard): every
   * accepted connection's local address, so no getsockname per accept */
  struct sockaddr_storage local;
  int local_known;
  uv_poll_t poll;
};

struct l4_worker {
  struct l4_forwarder *f;
  int index;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  uv_timer_t accept_pause;
  int epfd;          /* the connections' epoll set */
  uv_poll_t ep_poll; /* watches epfd in the loop */
  struct l4_listener *listeners;
  size_t nlisteners;
  int listening;
  struct l4_conn *conns; /* doubly linked list of open connections */
  /* connections that have carried no byte yet, oldest first (evict_silent) */
  struct l4_conn *silent_head, *silent_tail;
  struct l4_snapshot *snap;
  uint64_t snap_gen;
  int pipes[L4_PIPE_POOL][2]; /* empty pipes ready for reuse */
  int npipes;
  atomic_int stop_accepting;
  atomic_int shutdown;
};

struct l4_forwarder {
  struct l4_forward_config cfg;
  struct l4_worker *workers;
  int nworkers;
  struct metrics_counter *m_total;
  struct metrics_counter *m_rejected;
  struct metrics_gauge *m_active;
  struct metrics_counter *m_bytes_in;
  struct metrics_counter *m_bytes_out;
  struct metrics_counter *m_spliced;
  struct metrics_counter *m_idle_closed;
  struct metrics_counter *m_header_timeouts;
  struct metrics_counter *m_fd_exhausted;
  struct metrics_counter *m_capacity_paused;
  struct metrics_counter *m_evicted_max, *m_evicted_fds;
};

uint64_t l4_forward_active(void) {
  return atomic_load(&active_connections);
}

uint64_t l4_forward_fd_exhausted_at(void) {
  return atomic_load(&fd_exhausted_at_ms);
}

/* errno says the process (or system) is out of file descriptors. */
static void note_fd_errno(struct l4_forwarder *f, int e) {
  if (e != EMFILE && e != ENFILE) return;
  uint64_t now = uv_hrtime() / 1000000;
  atomic_store(&fd_exhausted_at_ms, now ? now : 1);
  metrics_counter_inc(f->m_fd_exhausted);
}

/* ---- listeners -------------------------------------------------------------- */

int l4_listener_open(const char *addr, int nworkers, int *fds, char *bound, size_t boundlen,
                     char *err, size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_parse(addr, &ss, &len) != 0) {
    snprintf(err, errlen, "--listen=%s: not a numeric IP:PORT", addr);
    return -1;
  }
  for (int i = 0; i < nworkers; i++) {
    /* accepted sockets inherit TCP_NODELAY: no setsockopt per connection; with port 0 every
     * other worker binds the port the kernel chose for the first (addr_bind_reuseport) */
    fds[i] = addr_bind_reuseport(&ss, len, 1024, ADDR_NONBLOCK | ADDR_NODELAY);
    if (fds[i] < 0) {
      snprintf(err, errlen, "--listen=%s: %s", addr, strerror(-fds[i]));
      for (int j = 0; j < i; j++) close(fds[j]);
      return -1;
    }
  }
  addr_format(&ss, bound, boundlen);
  return 0;
}

/* ---- the worker's epoll set ------------------------------------------------------ */

static void io_init(struct l4_io *io, int fd, void *data) {
  io->fd = fd;
  io->events = 0;
  io->cb = NULL;
  io->data = data;
}

/* Sets the interest (UV_READABLE|UV_WRITABLE, 0: none) and callback.
 * 0 or -1 (errno set). */
static int io_start(struct l4_worker *w, struct l4_io *io, int events, l4_io_cb cb) {
  io->cb = cb;
  if (io->fd < 0 || events == io->events) return 0;
  struct epoll_event ev = {.events = (uint32_t)((events & UV_READABLE ? EPOLLIN : 0) |
                                                (events & UV_WRITABLE ? EPOLLOUT : 0)),
                           .data.ptr = io};
  int op = events == 0 ? EPOLL_CTL_DEL : io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(w->epfd, op, io->fd, &ev) != 0) return -1;
  io->events = events;
  return 0;
}

/* Forgets the socket; the caller closes the fd (which leaves the set). */
static void io_close(struct l4_io *io) {
  io->fd = -1;
  io->events = 0;
}

#define L4_EPOLL_BATCH 128

static void on_epoll_readable(uv_poll_t *h, int status, int events) {
  struct l4_worker *w = h->data;
  struct epoll_event evs[L4_EPOLL_BATCH];
  int n = epoll_wait(w->epfd, evs, L4_EPOLL_BATCH, 0);
  for (int i = 0; i < n; i++) {
    struct l4_io *io = evs[i].data.ptr;
    /* closed or no longer interested since the batch was fetched */
    if (io->fd < 0 || io->events == 0 || !io->cb) continue;
    uint32_t e = evs[i].events;
    int ev = (e & EPOLLIN ? UV_READABLE : 0) | (e & EPOLLOUT ? UV_WRITABLE : 0);
    /* errors and hang-ups: report what the socket is watched for, the
     * next read/write/getsockopt tells what happened (as libuv does) */
    if (e & (EPOLLERR | EPOLLHUP)) ev |= io->events;
    ev &= io->events;
    if (ev) io->cb(io, 0, ev);
  }
}

/* ---- the silent list ----------------------------------------------------------- */

static void silent_add(struct l4_worker *w, struct l4_conn *c) {
  c->silent = 1;
  c->snext = NULL;
  c->sprev = w->silent_tail;
  if (w->silent_tail)
    w->silent_tail->snext = c;
  else
    w->silent_head = c;
  w->silent_tail = c;
}

/* c carried (or is about to carry) a byte, or closes: off for good. */
static void silent_remove(struct l4_conn *c) {
  if (!c->silent) return;
  struct l4_worker *w = c->w;
  if (c->sprev)
    c->sprev->snext = c->snext;
  else
    w->silent_head = c->snext;
  if (c->snext)
    c->snext->sprev = c->sprev;
  else
    w->silent_tail = c->sprev;
  c->sprev = c->snext = NULL;
  c->silent = 0;
}

/* ---- connection teardown ------------------------------------------------------ */

/* Returns an empty pipe to the worker's pool (a pipe with bytes left in
 * it is closed). */
static void dir_release(struct l4_worker *w, struct l4_dir *d) {
  if (d->pipe_r >= 0 && d->queued == 0 && w->npipes < L4_PIPE_POOL) {
    w->pipes[w->npipes][0] = d->pipe_r;
    w->pipes[w->npipes][1] = d->pipe_w;
    w->npipes++;
  } else {
    if (d->pipe_r >= 0) close(d->pipe_r);
    if (d->pipe_w >= 0) close(d->pipe_w);
  }
  d->pipe_r = d->pipe_w = -1;
  free(d->buf);
  d->buf = NULL;
}

static void conn_free(struct l4_conn *c) {
  struct l4_worker *w = c->w;
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  dir_release(w, &c->up);
  dir_release(w, &c->down);
  l4_snapshot_unref(c->snap);
  if (c->be) {
    if (c->be->m_conns) metrics_gauge_add(c->be->m_conns, -1);
    l4_backend_unref(c->be);
  }
  if (!c->evicted) {
    metrics_gauge_add(w->f->m_active, -1);
    atomic_fetch_sub(&active_connections, 1);
  }
  free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  struct l4_conn *c = h->data;
  if (--c->pending_closes == 0) conn_free(c);
}

static void conn_close(struct l4_conn *c) {
  if (c->phase == PHASE_CLOSING) return;
  c->phase = PHASE_CLOSING;
  silent_remove(c);
  c->pending_closes = 1;
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  io_close(&c->cpoll);
  io_close(&c->bpoll);
  if (c->cfd >= 0) close(c->cfd);
  if (c->bfd >= 0) close(c->bfd);
  c->cfd = c->bfd = -1;
}

/* ---- making room ------------------------------------------------------------ */

#define L4_EVICT_PEEKS 64 /* candidates looked at per eviction */

enum evict_reason { EVICT_MAX_CONNECTIONS, EVICT_FDS };

/* Bytes wait in fd's receive queue (the connection is about to carry
 * data even though no event delivered them yet). */
static int bytes_waiting(int fd) {
  char b;
  return fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/*
 * Closes the oldest connection of w that has carried no byte either way
 * (not keep), so its descriptors serve a new one; nginx closes its
 * "reusable" connections the same way when it runs short. A candidate
 * with bytes waiting leaves the list instead (it is talking). 1 if one was
 * closed (its descriptors are free on return), 0 if none is silent.
 */
static int evict_silent(struct l4_worker *w, struct l4_conn *keep, enum evict_reason why) {
  int looked = 0;
  struct l4_conn *c = w->silent_head;
  while (c && looked < L4_EVICT_PEEKS) {
    struct l4_conn *next = c->snext;
    if (c == keep) {
      c = next;
      continue;
    }
    looked++;
    if (bytes_waiting(c->cfd) || (c->phase != PHASE_CONNECTING && bytes_waiting(c->bfd))) {
      silent_remove(c);
      c = next;
      continue;
    }
    LOG_DEBUG("connection_evicted", "backend=%s phase=%d reason=%s",
              log_q(c->be ? c->be->name : "-"), (int)c->phase,
              why == EVICT_FDS ? "file_descriptors" : "max_connections");
    metrics_counter_inc(why == EVICT_FDS ? w->f->m_evicted_fds : w->f->m_evicted_max);
    /* its descriptors close now: it no longer counts as open */
    c->evicted = 1;
    metrics_gauge_add(w->f->m_active, -1);
    atomic_fetch_sub(&active_connections, 1);
    conn_close(c);
    return 1;
  }
  return 0;
}

/* ---- moving bytes ----------------------------------------------------------- */

/*
 * One pump call moves what is available now from src to dst through d and
 * returns; epoll is level-triggered, so anything left is reported again.
 * A read that returned less than a full pipe/buffer means the socket is
 * drained: stop there instead of paying a syscall for EAGAIN.
 */
#define L4_PIPE_CAP (64 * 1024) /* Linux default pipe capacity */
#define L4_PUMP_ROUNDS 16       /* bound on work per event, for fairness */

enum { PUMP_AGAIN = 0, PUMP_ERR = -1, PUMP_NO_SPLICE = 2, PUMP_SWITCH = 3 };

static int splice_in(struct l4_dir *d, int src, ssize_t *got) {
  ssize_t n =
      splice(src, NULL, d->pipe_w, NULL, L4_SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  *got = n;
  if (n > 0) {
    d->queued += (size_t)n;
  } else if (n == 0) {
    d->src_eof = 1;
  } else if (errno == EAGAIN) {
    /* the socket is empty, or the pipe is full: with bytes queued, wait
     * for the destination before reading again */
    if (d->queued > 0) d->full = 1;
  } else if (errno == EINVAL && d->queued == 0) {
    return PUMP_NO_SPLICE; /* this socket pair cannot splice */
  } else if (errno != EINTR) {
    return PUMP_ERR;
  }
  return PUMP_AGAIN;
}

static int pump_splice(struct l4_dir *d, int src, int dst, uint64_t *moved) {
  for (int round = 0; round < L4_PUMP_ROUNDS; round++) {
    ssize_t got = 0;
    if (!d->src_eof && !d->full) {
      int rc = splice_in(d, src, &got);
      if (rc != PUMP_AGAIN) return rc;
    }
    if (d->queued > 0) {
      ssize_t n = splice(d->pipe_r, NULL, dst, NULL, d->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->queued -= (size_t)n;
        d->full = 0;
        *moved += (uint64_t)n;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return PUMP_ERR;
      }
      if (d->queued > 0) return PUMP_AGAIN; /* destination full: wait for it */
    }
    if (got < L4_PIPE_CAP) return PUMP_AGAIN;
  }
  return PUMP_AGAIN;
}

/* may_splice: return PUMP_SWITCH after a read that filled the buffer and
 * was written out completely (bulk data, nothing buffered). */
static int pump_rw(struct l4_dir *d, int src, int dst, uint64_t *moved, int may_splice) {
  if (!d->buf && !(d->buf = malloc(L4_BUF_SIZE))) return PUMP_ERR;
  for (int round = 0; round < L4_PUMP_ROUNDS; round++) {
    ssize_t got = 0;
    if (!d->src_eof && d->off == d->len) {
      got = read(src, d->buf, L4_BUF_SIZE);
      if (got > 0) {
        d->off = 0;
        d->len = (size_t)got;
      } else if (got == 0) {
        d->src_eof = 1;
      } else if (errno != EAGAIN && errno != EINTR) {
        return PUMP_ERR;
      }
    }
    if (d->off < d->len) {
      ssize_t n = write(dst, d->buf + d->off, d->len - d->off);
      if (n > 0) {
        d->off += (size_t)n;
        *moved += (uint64_t)n;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return PUMP_ERR;
      }
    }
    d->queued = d->len - d->off;
    d->full = d->queued > 0;
    if (d->full || got < L4_BUF_SIZE) return PUMP_AGAIN;
    if (may_splice) return PUMP_SWITCH;
  }
  return PUMP_AGAIN;
}

static int dir_open_pipe(struct l4_worker *w, struct l4_dir *d);

/*
 * A direction starts by copying through a small buffer (cheapest for the
 * short request/response exchanges of kept-alive HTTP) and switches to
 * splice(2) once a read fills the whole buffer, i.e. when bulk data flows;
 * it switches at a moment the buffer is empty, so no byte is reordered.
 */
static int pump(struct l4_conn *c, struct l4_dir *d, int src, int dst,
                struct metrics_counter *bytes) {
  uint64_t moved = 0;
  int rc = PUMP_AGAIN;
  if (!d->splicing) {
    rc = pump_rw(d, src, dst, &moved, c->use_splice);
    if (rc == PUMP_SWITCH) {
      rc = PUMP_AGAIN;
      if (d->pipe_r >= 0 || dir_open_pipe(c->w, d) == 0) {
        d->splicing = 1;
        d->off = d->len = d->queued = 0;
        d->full = 0;
        free(d->buf);
        d->buf = NULL;
      } else {
        c->use_splice = 0; /* out of fds for pipes: keep copying */
      }
    }
  }
  if (rc == PUMP_AGAIN && d->splicing) {
    uint64_t copied = moved;
    rc = pump_splice(d, src, dst, &moved);
    if (moved > copied) metrics_counter_add(c->w->f->m_spliced, moved - copied);
    if (rc == PUMP_NO_SPLICE) { /* nothing queued: copy from now on */
      c->use_splice = 0;
      d->splicing = 0;
      rc = pump_rw(d, src, dst, &moved, 0);
    }
  }
  if (moved) {
    metrics_counter_add(bytes, moved);
    c->last_active = uv_now(&c->w->loop);
  }
  if (c->silent && (moved || d->queued)) silent_remove(c);
  if (rc == PUMP_AGAIN && d->src_eof && d->queued == 0 && !d->shut) {
    shutdown(dst, SHUT_WR);
    d->shut = 1;
  }
  return rc;
}

static int dir_can_read(const struct l4_dir *d) {
  return !d->src_eof && !d->full;
}

static void on_stream_event(struct l4_io *h, int status, int events);

/* Only touches epoll when the interest really changes. */
static void set_interest(struct l4_conn *c, struct l4_io *h, int *cur, int events) {
  if (io_start(c->w, h, events, on_stream_event) != 0) {
    conn_close(c);
    return;
  }
  *cur = events;
}

enum { PUMP_UP = 1, PUMP_DOWN = 2 };

static void stream(struct l4_conn *c, int which) {
  struct l4_forwarder *f = c->w->f;
  if (((which & PUMP_UP) && pump(c, &c->up, c->cfd, c->bfd, f->m_bytes_in) < 0) ||
      ((which & PUMP_DOWN) && pump(c, &c->down, c->bfd, c->cfd, f->m_bytes_out) < 0)) {
    conn_close(c);
    return;
  }
  if (c->up.shut && c->down.shut) {
    conn_close(c);
    return;
  }
  set_interest(c, &c->cpoll, &c->cev,
               (dir_can_read(&c->up) ? UV_READABLE : 0) | (c->down.queued ? UV_WRITABLE : 0));
  if (c->phase == PHASE_CLOSING) return;
  set_interest(c, &c->bpoll, &c->bev,
               (dir_can_read(&c->down) ? UV_READABLE : 0) | (c->up.queued ? UV_WRITABLE : 0));
}

static void on_stream_event(struct l4_io *h, int status, int events) {
  struct l4_conn *c = h->data;
  if (c->phase != PHASE_STREAMING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  /* client readable / backend writable move bytes up; the others down */
  int client = h == &c->cpoll;
  int which = 0;
  if (events & UV_READABLE) which |= client ? PUMP_UP : PUMP_DOWN;
  if (events & UV_WRITABLE) which |= client ? PUMP_DOWN : PUMP_UP;
  if (events & UV_DISCONNECT) which = PUMP_UP | PUMP_DOWN;
  stream(c, which);
}

static void dir_init(struct l4_dir *d) {
  memset(d, 0, sizeof(*d));
  d->pipe_r = d->pipe_w = -1;
}

/* Pipes come from a small per-worker pool: creating and closing two pipe
 * pairs per connection costs six syscalls. */
static int dir_open_pipe(struct l4_worker *w, struct l4_dir *d) {
  if (w->npipes > 0) {
    w->npipes--;
    d->pipe_r = w->pipes[w->npipes][0];
    d->pipe_w = w->pipes[w->npipes][1];
    return 0;
  }
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
    note_fd_errno(w->f, errno);
    return -1;
  }
  d->pipe_r = p[0];
  d->pipe_w = p[1];
  return 0;
}

/* Idle: no byte moved either way for idle_timeout_ms (a client or backend
 * that stalls, or a reader that never drains). Cheap to keep: the timer
 * is re-armed lazily from last_active when it fires, not on every byte. */
static void on_idle_timer(uv_timer_t *t) {
  struct l4_conn *c = t->data;
  if (c->phase != PHASE_STREAMING) return;
  uint64_t idle = c->w->f->cfg.idle_timeout_ms;
  uint64_t quiet = uv_now(&c->w->loop) - c->last_active;
  if (quiet < idle) {
    uv_timer_start(&c->timer, on_idle_timer, idle - quiet, 0);
    return;
  }
  metrics_counter_inc(c->w->f->m_idle_closed);
  LOG_DEBUG("idle_timeout", "backend=%s idle_ms=%llu", log_q(c->be ? c->be->name : "-"),
            (unsigned long long)quiet);
  conn_close(c);
}

/* which: the directions to pump right away. The backend has just been
 * connected (and sent nothing yet as far as we know): its side is only
 * watched, level-triggered epoll reports bytes already there. */
static void on_idle_timer(uv_timer_t *t);

static void start_streaming(struct l4_conn *c, int which) {
  c->phase = PHASE_STREAMING;
  uv_timer_stop(&c->timer);
  c->last_active = uv_now(&c->w->loop);
  uint32_t idle = c->w->f->cfg.idle_timeout_ms;
  if (idle) uv_timer_start(&c->timer, on_idle_timer, idle, 0);
  io_init(&c->cpoll, c->cfd, c);
  c->cev = 0;
  c->bev = c->bpoll.events;
  c->bpoll.cb = on_stream_event; /* replaces the connect/header callback */
  stream(c, which);
}

/*
 * Sends the PROXY header together with the bytes the client has already
 * sent (usually the whole first request) in one writev, saving a write
 * and a read per connection and a TCP segment. The bytes read stay in the
 * up buffer with off/len marking what is still to be written, so the
 * stream phase finishes them exactly as pump_rw would. Returns 1 when
 * everything went out, 0 when something is left (header or data), -1 on
 * error. *which gets the directions stream() still has to pump.
 */
static int send_header(struct l4_conn *c);

static int send_header_with_data(struct l4_conn *c, int *which) {
  struct l4_dir *d = &c->up;
  *which = PUMP_UP;
  if (!d->buf && !(d->buf = malloc(L4_BUF_SIZE))) return -1;
  ssize_t got = read(c->cfd, d->buf, L4_BUF_SIZE);
  if (got < 0 && errno != EAGAIN && errno != EINTR) return -1;
  if (got <= 0) {
    if (got == 0) d->src_eof = 1; /* pump forwards the EOF after the header */
    int rc = send_header(c);
    return rc;
  }
  silent_remove(c); /* the client spoke */
  d->off = 0;
  d->len = (size_t)got;
  struct iovec iov[2] = {{c->hdr, c->hdr_len}, {d->buf, d->len}};
  ssize_t n;
  do {
    n = writev(c->bfd, iov, 2);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) return -1;
  if (n < 0) n = 0;
  size_t hdr_sent = (size_t)n < c->hdr_len ? (size_t)n : c->hdr_len;
  c->hdr_off = hdr_sent;
  size_t data_sent = (size_t)n - hdr_sent;
  d->off = data_sent;
  if (data_sent) metrics_counter_add(c->w->f->m_bytes_in, data_sent);
  d->queued = d->len - d->off;
  d->full = d->queued > 0;
  if (c->hdr_off < c->hdr_len) return 0;
  /* a read that filled the buffer may have more behind it: pump at once */
  if (d->queued == 0 && got < L4_BUF_SIZE) *which = 0;
  return d->queued == 0 ? 1 : 0;
}

/* ---- connecting ------------------------------------------------------------------ */

static void try_connect(struct l4_conn *c);

static int send_header(struct l4_conn *c) {
  while (c->hdr_off < c->hdr_len) {
    ssize_t n = write(c->bfd, c->hdr + c->hdr_off, c->hdr_len - c->hdr_off);
    if (n > 0) {
      c->hdr_off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return 0;
    } else {
      return -1;
    }
  }
  return 1;
}

static void on_header_writable(struct l4_io *h, int status, int events) {
  struct l4_conn *c = h->data;
  if (c->phase != PHASE_HEADER) return;
  int rc = status < 0 ? -1 : send_header(c);
  if (rc < 0)
    conn_close(c);
  else if (rc == 1)
    start_streaming(c, PUMP_UP);
}

static void connected(struct l4_conn *c) {
  struct l4_backend *be = c->tried[c->ntries - 1];
  l4_backend_ref(be);
  c->be = be;
  if (be->m_conns) metrics_gauge_add(be->m_conns, 1);
  l4_snapshot_unref(c->snap);
  c->snap = NULL;
  int one = 1;
  setsockopt(c->bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!c->w->f->cfg.proxy_protocol) {
    start_streaming(c, PUMP_UP);
    return;
  }
  int n = proxy_proto_encode_v2(c->hdr, sizeof(c->hdr), PROXY_PROTO_CMD_PROXY, &c->src, &c->dst,
                                NULL, 0, 0);
  if (n < 0) {
    LOG_WARN("proxy_header_failed", "reason=%s", log_q(proxy_proto_strerror(n)));
    conn_close(c);
    return;
  }
  c->hdr_len = (size_t)n;
  c->phase = PHASE_HEADER;
  int which;
  int rc = send_header_with_data(c, &which);
  if (rc < 0) {
    conn_close(c);
  } else if (rc == 1 || c->hdr_off == c->hdr_len) {
    /* header out; data left over is written by the stream phase */
    start_streaming(c, which);
  } else if (io_start(c->w, &c->bpoll, UV_WRITABLE, on_header_writable) != 0) {
    conn_close(c);
  }
}

static void report_failure(struct l4_conn *c, struct l4_backend *be, const char *why) {
  atomic_fetch_add(&be->connect_failures, 1);
  if (be->m_failures) metrics_counter_inc(be->m_failures);
  LOG_DEBUG("connect_failed", "backend=%s reason=%s try=%d", log_q(be->name), log_q(why),
            c->ntries);
  struct l4_forward_config *cfg = &c->w->f->cfg;
  if (cfg->on_connect_failure) cfg->on_connect_failure(cfg->ud, be);
}

static void attempt_failed(struct l4_conn *c, const char *why) {
  report_failure(c, c->tried[c->ntries - 1], why);
  uv_timer_stop(&c->timer);
  if (c->bfd >= 0) {
    io_close(&c->bpoll);
    close(c->bfd);
    c->bfd = -1;
  }
  try_connect(c);
}

static void on_connect_event(struct l4_io *h, int status, int events) {
  struct l4_conn *c = h->data;
  if (c->phase != PHASE_CONNECTING) return;
  int soerr = 0;
  socklen_t len = sizeof(soerr);
  if (status < 0) soerr = -status;
  if (!soerr && getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
  if (soerr) {
    attempt_failed(c, strerror(soerr));
    return;
  }
  /* the connect timer keeps running: it also bounds the PROXY header */
  connected(c);
}

static void on_connect_timeout(uv_timer_t *t) {
  struct l4_conn *c = t->data;
  if (c->phase == PHASE_CONNECTING) {
    attempt_failed(c, "connect timeout");
  } else if (c->phase == PHASE_HEADER) {
    /* connected, but the backend does not take the PROXY header */
    metrics_counter_inc(c->w->f->m_header_timeouts);
    LOG_DEBUG("proxy_header_timeout", "backend=%s", log_q(c->be ? c->be->name : "-"));
    conn_close(c);
  }
}

/* The next backend to try: the flow's own slot first, then walking the
 * table from it to the first backend not tried yet. -1 when none. */
static int next_candidate(struct l4_conn *c) {
  const struct maglev_table *t = c->snap->table;
  if (c->ntries >= (int)c->snap->n) return -1;
  for (uint32_t step = 0; step < t->m; step++) {
    uint32_t slot = c->slot + step;
    if (slot >= t->m) slot -= t->m;
    int idx = maglev_slot_backend(t, slot);
    if (idx < 0) return -1;
    int seen = 0;
    for (int i = 0; i < c->ntries; i++) seen |= c->tried[i] == c->snap->backends[idx];
    /* a replica without HTTPS is passed over on https listeners */
    if (c->https && !c->snap->backends[idx]->https_address) seen = 1;
    if (!seen) return idx;
  }
  return -1;
}

static void try_connect(struct l4_conn *c) {
  while (c->ntries < L4_MAX_TRIES) {
    int idx = next_candidate(c);
    if (idx < 0) break;
    struct l4_backend *be = c->snap->backends[idx];
    c->tried[c->ntries++] = be;
    const struct sockaddr_storage *addr = c->https ? &be->https_addr : &be->addr;
    socklen_t addrlen = c->https ? be->https_addrlen : be->addrlen;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int e = errno;
      note_fd_errno(c->w->f, e);
      if ((e == EMFILE || e == ENFILE) && evict_silent(c->w, c, EVICT_FDS))
        fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        LOG_WARN("socket_failed", "reason=%s", log_q(strerror(e)));
        break;
      }
    }
    if (connect(fd, (const struct sockaddr *)addr, addrlen) != 0 && errno != EINPROGRESS) {
      int e = errno;
      close(fd);
      report_failure(c, be, strerror(e));
      continue;
    }
    c->bfd = fd;
    io_init(&c->bpoll, fd, c);
    if (io_start(c->w, &c->bpoll, UV_WRITABLE, on_connect_event) != 0) {
      LOG_WARN("epoll_failed", "reason=%s", log_q(strerror(errno)));
      break;
    }
    uv_timer_start(&c->timer, on_connect_timeout, c->w->f->cfg.connect_timeout_ms, 0);
    return;
  }
  LOG_DEBUG("no_backend", "tries=%d", c->ntries);
  conn_close(c);
}

/* ---- accepting ---------------------------------------------------------------------- */

static void refresh_snapshot(struct l4_worker *w) {
  uint64_t gen = l4_snapshot_generation();
  if (gen == w->snap_gen && w->snap) return;
  l4_snapshot_unref(w->snap);
  w->snap = l4_snapshot_acquire();
  w->snap_gen = gen;
}

static void conn_start(struct l4_worker *w, int fd, const struct sockaddr_storage *peer,
                       const struct l4_listener *l) {
  struct l4_forwarder *f = w->f;
  metrics_counter_inc(f->m_total);
  refresh_snapshot(w);
  struct maglev_flow flow;
  socklen_t len = sizeof(struct sockaddr_storage);
  struct l4_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    close(fd);
    return;
  }
  c->w = w;
  c->cfd = fd;
  c->bfd = -1;
  io_init(&c->cpoll, -1, c);
  io_init(&c->bpoll, -1, c);
  c->src = *peer;
  c->https = l->https;
  c->use_splice = f->cfg.splice;
  dir_init(&c->up);
  dir_init(&c->down);
  c->phase = PHASE_CONNECTING;
  uv_timer_init(&w->loop, &c->timer);
  c->timer.data = c;
  silent_add(w, c);
  c->next = w->conns;
  if (w->conns) w->conns->prev = c;
  w->conns = c;
  atomic_fetch_add(&active_connections, 1);
  metrics_gauge_add(f->m_active, 1);

  int named = 0;
  if (l->local_known)
    c->dst = l->local;
  else
    named = getsockname(fd, (struct sockaddr *)&c->dst, &len);
  l4_unmap_v4(&c->src);
  l4_unmap_v4(&c->dst);
  if (named != 0 || l4_flow_from_addrs(&c->src, &c->dst, &flow) != 0 || !w->snap ||
      w->snap->n == 0 || l4_snapshot_pick(w->snap, &flow, f->cfg.hash_mode, &c->slot) < 0) {
    metrics_counter_inc(f->m_rejected);
    conn_close(c);
    return;
  }
  c->snap = w->snap;
  atomic_fetch_add(&c->snap->refs, 1);
  try_connect(c);
}

static void on_accept_resume(uv_timer_t *t);

/* Records the listener's address when it is a specific one. */
static void listener_learn_local(struct l4_listener *ls) {
  socklen_t len = sizeof(ls->local);
  ls->local_known = 0;
  if (getsockname(ls->fd, (struct sockaddr *)&ls->local, &len) != 0) return;
  if (ls->local.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ls->local;
    ls->local_known = a->sin_addr.s_addr != htonl(INADDR_ANY);
  } else if (ls->local.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ls->local;
    ls->local_known = !IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
  }
}

/* Stops accepting on every listener of w for L4_ACCEPT_PAUSE_MS. */
static void pause_accepting(struct l4_worker *w) {
  for (size_t j = 0; j < w->nlisteners; j++) uv_poll_stop(&w->listeners[j].poll);
  uv_timer_start(&w->accept_pause, on_accept_resume, L4_ACCEPT_PAUSE_MS, 0);
}

/* Out of descriptors: pooled pipes are descriptors too; give them back. */
static void drop_pipe_pool(struct l4_worker *w) {
  for (int i = 0; i < w->npipes; i++) {
    close(w->pipes[i][0]);
    close(w->pipes[i][1]);
  }
  w->npipes = 0;
}

static void on_listener_readable(uv_poll_t *h, int status, int events) {
  struct l4_listener *l = h->data;
  struct l4_worker *w = l->w;
  uint64_t max = w->f->cfg.max_connections;
  for (int i = 0; i < L4_ACCEPT_BATCH; i++) {
    if (max && atomic_load(&active_connections) >= max) {
      /* At capacity. Room is made only for a client known to wait: the
       * first of a batch (epoll said so; level-triggered, it says so again
       * next turn for the others). Every connection talking: clients wait
       * in the backlog, descriptors stay free. */
      if (i > 0) return;
      if (!evict_silent(w, NULL, EVICT_MAX_CONNECTIONS)) {
        metrics_counter_inc(w->f->m_capacity_paused);
        pause_accepting(w);
        return;
      }
    }
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      conn_start(w, fd, &peer, l);
      continue;
    }
    int e = errno;
    if (e == EINTR || e == ECONNABORTED) continue;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
      note_fd_errno(w->f, e);
      if (e == EMFILE || e == ENFILE) {
        drop_pipe_pool(w);
        /* accept4 fails so whether or not a client waits: evict only for
         * the first of a batch, which epoll said waits */
        if (i > 0) return;
        if (evict_silent(w, NULL, EVICT_FDS)) continue; /* descriptors are free again */
      }
      /* level-triggered: pause accepting instead of spinning */
      LOG_WARN("accept_paused", "reason=%s", log_q(strerror(e)));
      pause_accepting(w);
    }
    return;
  }
}

static void on_accept_resume(uv_timer_t *t) {
  struct l4_worker *w = t->data;
  if (!w->listening) return;
  for (size_t j = 0; j < w->nlisteners; j++)
    uv_poll_start(&w->listeners[j].poll, UV_READABLE, on_listener_readable);
}

static void on_listener_closed(uv_handle_t *h) {
  struct l4_listener *l = h->data;
  close(l->fd);
  l->fd = -1;
}

static void worker_close_listeners(struct l4_worker *w) {
  if (!w->listening) return;
  w->listening = 0;
  for (size_t j = 0; j < w->nlisteners; j++)
    uv_close((uv_handle_t *)&w->listeners[j].poll, on_listener_closed);
}

static void on_worker_wake(uv_async_t *a) {
  struct l4_worker *w = a->data;
  if (atomic_load(&w->stop_accepting)) worker_close_listeners(w);
  if (atomic_load(&w->shutdown)) {
    worker_close_listeners(w);
    for (struct l4_conn *c = w->conns; c; c = c->next) conn_close(c);
    uv_close((uv_handle_t *)&w->ep_poll, NULL);
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->accept_pause, NULL);
  }
}

static void worker_main(void *arg) {
  struct l4_worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  drop_pipe_pool(w);
  close(w->epfd);
  w->epfd = -1;
  l4_snapshot_unref(w->snap);
  w->snap = NULL;
}

int l4_forward_start(const struct l4_forward_config *cfg, int nworkers, const int *fds,
                     const int *https, size_t nlisteners, struct l4_forwarder **out, char *err,
                     size_t errlen) {
  struct l4_forwarder *f = calloc(1, sizeof(*f));
  if (!f) return -1;
  f->cfg = *cfg;
  f->nworkers = nworkers;
  f->workers = calloc((size_t)nworkers, sizeof(*f->workers));
  struct metrics_registry *m = cfg->metrics;
  f->m_total = metrics_counter(m, "edge_l4_connections_total", "Connections accepted", "");
  f->m_rejected = metrics_counter(m, "edge_l4_rejected_total",
                                  "Connections closed because no backend was available", "");
  f->m_active = metrics_gauge(m, "edge_l4_active_connections", "Connections open now", "");
  f->m_bytes_in = metrics_counter(m, "edge_l4_bytes_total", "Bytes forwarded", "direction=\"in\"");
  f->m_spliced = metrics_counter(m, "edge_l4_spliced_bytes_total",
                                 "Bytes of edge_l4_bytes_total moved with splice(2)", "");
  f->m_bytes_out =
      metrics_counter(m, "edge_l4_bytes_total", "Bytes forwarded", "direction=\"out\"");
  f->m_idle_closed = metrics_counter(m, "edge_l4_timeouts_total", "Connections closed by a timeout",
                                     "phase=\"idle\"");
  f->m_header_timeouts = metrics_counter(
      m, "edge_l4_timeouts_total", "Connections closed by a timeout", "phase=\"proxy_header\"");
  f->m_fd_exhausted =
      metrics_counter(m, "edge_l4_fd_exhausted_total",
                      "accept or socket calls that failed for lack of file descriptors", "");
  f->m_capacity_paused =
      metrics_counter(m, "edge_l4_accept_paused_total",
                      "Times accepting paused because max connections were open", "");
  f->m_evicted_max =
      metrics_counter(m, "edge_l4_connections_evicted_total",
                      "Connections that had carried no byte closed to make room, by what was short",
                      "reason=\"max_connections\"");
  f->m_evicted_fds =
      metrics_counter(m, "edge_l4_connections_evicted_total",
                      "Connections that had carried no byte closed to make room, by what was short",
                      "reason=\"file_descriptors\"");
  for (int i = 0; i < nworkers; i++) {
    struct l4_worker *w = &f->workers[i];
    w->f = f;
    w->index = i;
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wake, on_worker_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->accept_pause);
    w->accept_pause.data = w;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0 || uv_poll_init(&w->loop, &w->ep_poll, w->epfd) != 0) {
      snprintf(err, errlen, "epoll: %s", strerror(errno));
      return -1; /* the process exits on this error */
    }
    w->ep_poll.data = w;
    uv_poll_start(&w->ep_poll, UV_READABLE, on_epoll_readable);
    w->nlisteners = nlisteners;
    w->listeners = calloc(nlisteners ? nlisteners : 1, sizeof(*w->listeners));
    for (size_t l = 0; l < nlisteners; l++) {
      struct l4_listener *ls = &w->listeners[l];
      ls->w = w;
      ls->fd = fds[l * (size_t)nworkers + (size_t)i];
      ls->https = https ? https[l] : 0;
      listener_learn_local(ls);
      uv_poll_init(&w->loop, &ls->poll, ls->fd);
      ls->poll.data = ls;
      uv_poll_start(&ls->poll, UV_READABLE, on_listener_readable);
    }
    w->listening = 1;
  }
  for (int i = 0; i < nworkers; i++) {
    if (uv_thread_create(&f->workers[i].thread, worker_main, &f->workers[i]) != 0) {
      snprintf(err, errlen, "cannot start worker thread");
      return -1; /* the process exits on this error */
    }
  }
  *out = f;
  return 0;
}

void l4_forward_stop_accepting(struct l4_forwarder *f) {
  for (int i = 0; i < f->nworkers; i++) {
    atomic_store(&f->workers[i].stop_accepting, 1);
    uv_async_send(&f->workers[i].wake);
  }
}

void l4_forward_shutdown(struct l4_forwarder *f) {
  if (!f) return;
  for (int i = 0; i < f->nworkers; i++) {
    atomic_store(&f->workers[i].shutdown, 1);
    uv_async_send(&f->workers[i].wake);
  }
  for (int i = 0; i < f->nworkers; i++) {
    struct l4_worker *w = &f->workers[i];
    uv_thread_join(&w->thread);
    uv_loop_close(&w->loop);
    free(w->listeners);
  }
  free(f->workers);
  free(f);
}
