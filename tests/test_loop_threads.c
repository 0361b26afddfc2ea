/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_loop_threads.c
 * @brief The loop layer's thread-safe entry points under load: several
 *        threads that are not loop threads send to connections by id,
 *        broadcast to all of them and post work to the loops, while the
 *        clients have their own messages echoed.  Every message must
 *        arrive exactly once, in order per sender; a send to an ended
 *        connection must report it; every closure must come back once.
 *        Built with --enable-tsan, ThreadSanitizer checks the same run
 *        for data races (scripts/run-tests).
 *
 * libmicrohttpd serves on 127.0.0.1 (a free port); the clients are
 * threads of this program with blocking sockets and the library's
 * client-side codec.  Every wait is bounded (alarm()).
 */

#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#define CLIENTS 8
#define SENDERS 4
/* Sends per sender thread to every client. */
#define ROUNDS 300
/* Every BROADCAST_EVERY-th round, a sender also broadcasts. */
#define BROADCAST_EVERY 10
/* Messages each client has echoed. */
#define ECHOES 300
#define POSTS_PER_SENDER 200

static struct MHD_WebSocketServer *server;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned long long ids[CLIENTS];
/* Each client's session and loop, set in on_open; the session is used
   only in its loop's thread. */
static struct MHD_WebSocketSession *sessions[CLIENTS];
static struct MHD_WebSocketLoop *loops[CLIENTS];
static unsigned int opened;
static unsigned int ended;
static unsigned int posts_run;
static int failures;

/* Closures of the connections, handed to the upgrade. */
static int tags[CLIENTS];
static int next_tag;


#define FAIL(...)                                                              \
  do                                                                           \
  {                                                                            \
    fprintf (stderr, __VA_ARGS__);                                             \
    fputc ('\n', stderr);                                                      \
    __atomic_add_fetch (&failures, 1, __ATOMIC_RELAXED);                       \
  } while (0)


/* ------------------------------------------------------ broadcast memory */

/* The senders' broadcasts come from these allocators, so that the test
   sees every block of theirs: the broadcast and its frame, made in the
   sender's thread, and the share of it that each loop makes in its own
   (ws_bc_share_new()).  Freed blocks are overwritten first, so that a
   frame sent after its broadcast went arrives garbled and fails. */
static unsigned int bc_live;
/* Shares made, and refused by the stingy allocator. */
static unsigned int bc_shares;
static unsigned int bc_refused;
/* Set in a sender while it creates a broadcast. */
static __thread int bc_creating;

/* The length before each block; the union keeps the block aligned as
   malloc's are (C99 has no max_align_t). */
union bc_block
{
  size_t len;
  long double ld;
  long long ll;
  void *p;
};

static void *
bc_alloc (size_t len)
{
  union bc_block *b = malloc (sizeof (*b) + len);

  if (NULL == b)
    return NULL;
  b->len = len;
  __atomic_add_fetch (&bc_live, 1, __ATOMIC_RELAXED);
  if (! bc_creating)
    __atomic_add_fetch (&bc_shares, 1, __ATOMIC_RELAXED);
  return b + 1;
}

/* Gives the loops no memory for a share: each frame then takes a
   reference of the broadcast itself. */
static void *
bc_alloc_stingy (size_t len)
{
  if (! bc_creating)
  {
    __atomic_add_fetch (&bc_refused, 1, __ATOMIC_RELAXED);
    return NULL;
  }
  return bc_alloc (len);
}

static void
bc_free (void *p)
{
  union bc_block *b;

  if (NULL == p)
    return;
  b = (union bc_block *) p - 1;
  memset (p, 0xEE, b->len);
  __atomic_sub_fetch (&bc_live, 1, __ATOMIC_RELAXED);
  free (b);
}


/* ------------------------------------------------------------ server side */

static void
on_open (void *cls, struct MHD_WebSocketSession *session)
{
  int *tag = cls;

  pthread_mutex_lock (&lock);
  ids[*tag] = MHD_websocket_server_connection_id (session);
  sessions[*tag] = session;
  loops[*tag] = MHD_websocket_loop_current ();
  opened++;
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
}


static void
on_message (void *cls, struct MHD_WebSocketSession *session,
            enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  (void) cls;
  if (MHD_WEBSOCKET_STATUS_TEXT_FRAME == type)
    (void) MHD_websocket_session_send_text (session, data, len);
}


static void
on_end (void *cls, struct MHD_WebSocketSession *session,
        enum MHD_WEBSOCKET_END_REASON reason, unsigned short code)
{
  (void) reason;
  (void) code;
  if (NULL == session)
    FAIL ("a connection ended without a session");
  else
    sessions[*(int *) cls] = NULL;
  pthread_mutex_lock (&lock);
  ended++;
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
}


static enum MHD_Result
on_request (void *cls, struct MHD_Connection *connection, const char *url,
            const char *method, const char *version, const char *upload_data,
            size_t *upload_data_size, void **req_cls)
{
  int *tag;

  (void) cls;
  (void) url;
  (void) upload_data;
  (void) upload_data_size;
  (void) req_cls;
  pthread_mutex_lock (&lock);
  tag = &tags[next_tag % CLIENTS];
  *tag = next_tag++ % CLIENTS;
  pthread_mutex_unlock (&lock);
  return (enum MHD_Result) MHD_websocket_server_upgrade (server, connection,
                                                         method, version, tag);
}


static void
count_post (struct MHD_WebSocketLoop *loop, void *arg)
{
  (void) arg;
  if (MHD_websocket_loop_current () != loop)
    FAIL ("a post ran outside its loop");
  __atomic_add_fetch (&posts_run, 1, __ATOMIC_RELAXED);
}


/* A send on a session from a task of its loop: the loop must notice the
   queued output although no callback of that session ran. */
static void
send_posted (struct MHD_WebSocketLoop *loop, void *arg)
{
  unsigned int k = (unsigned int) (uintptr_t) arg;

  if ((NULL == sessions[k]) || (loops[k] != loop))
  {
    FAIL ("a post for client %u found no session in its loop", k);
    return;
  }
  if (MHD_WEBSOCKET_SEND_OK
      != MHD_websocket_session_send_text (sessions[k], "p", 1))
    FAIL ("a posted send to client %u was not queued", k);
}


/* ------------------------------------------------------------ client side */

struct Client
{
  int index;
  int fd;
  uint16_t port;
  struct MHD_WebSocketStream *ws;
  /* Next sequence number expected from each sender, and counts. */
  unsigned int next_seq[SENDERS];
  unsigned int broadcasts;
  unsigned int posted;
  unsigned int echoes;
};


/* Masking keys: any bytes do for a test (xorshift, one per thread). */
static size_t
rng (void *cls, void *buf, size_t len)
{
  static __thread uint32_t x = 2463534242u;
  unsigned char *p = buf;
  size_t i;

  (void) cls;
  for (i = 0; i < len; i++)
  {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (unsigned char) x;
  }
  return len;
}


static int
send_all (int fd, const char *data, size_t len)
{
  while (len > 0)
  {
    ssize_t n = send (fd, data, len, MSG_NOSIGNAL);

    if (n < 0)
    {
      if (EINTR == errno)
        continue;
      return -1;
    }
    data += n;
    len -= (size_t) n;
  }
  return 0;
}


/* Connects and upgrades; 0 or -1. */
static int
client_connect (struct Client *c)
{
  struct sockaddr_in a;
  struct timeval tv = { 20, 0 };
  static const char req[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";
  char buf[1024];
  size_t have = 0;

  c->fd = socket (AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0)
    return -1;
  (void) setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
  memset (&a, 0, sizeof (a));
  a.sin_family = AF_INET;
  a.sin_port = htons (c->port);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if ((0 != connect (c->fd, (struct sockaddr *) &a, sizeof (a)))
      || (0 != send_all (c->fd, req, sizeof (req) - 1)))
    return -1;
  /* Byte by byte up to the end of the headers: what follows is frames. */
  while (have < sizeof (buf) - 1)
  {
    ssize_t n = recv (c->fd, buf + have, 1, 0);

    if (n <= 0)
      return -1;
    have++;
    buf[have] = '\0';
    if ((have >= 4) && (0 == memcmp (buf + have - 4, "\r\n\r\n", 4)))
      break;
  }
  if (0 != strncmp (buf, "HTTP/1.1 101", 12))
    return -1;
  return (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_stream_init2 (&c->ws, MHD_WEBSOCKET_FLAG_CLIENT, 0,
                                         &malloc, &realloc, &free, NULL, &rng))
           ? 0
           : -1;
}


static int
client_send (struct Client *c, const char *text)
{
  char *frame;
  size_t len;
  int r;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (c->ws, text, strlen (text),
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                    &len, NULL))
    return -1;
  r = send_all (c->fd, frame, len);
  MHD_websocket_free (c->ws, frame);
  return r;
}


/* Checks one message the server sent; 1 when it was a close. */
static int
client_judge (struct Client *c, enum MHD_WEBSOCKET_STATUS st,
              const char *payload)
{
  unsigned int s;
  unsigned int seq;
  unsigned int k;

  if (MHD_WEBSOCKET_STATUS_CLOSE_FRAME == st)
    return 1;
  if (MHD_WEBSOCKET_STATUS_TEXT_FRAME != st)
  {
    FAIL ("client %d: status %d", c->index, (int) st);
    return 1;
  }
  if (2 == sscanf (payload, "s%u:%u", &s, &seq))
  {
    if ((s >= SENDERS) || (seq != c->next_seq[s]))
      FAIL ("client %d: from sender %u got %u, expected %u", c->index, s, seq,
            (s < SENDERS) ? c->next_seq[s] : 0);
    else
      c->next_seq[s]++;
  }
  else if (1 == sscanf (payload, "b%u", &s))
    c->broadcasts++;
  else if (0 == strcmp (payload, "p"))
    c->posted++;
  else if (1 == sscanf (payload, "e%u", &k))
  {
    if (k != c->echoes)
      FAIL ("client %d: echo %u, expected %u", c->index, k, c->echoes);
    c->echoes++;
  }
  else
    FAIL ("client %d: unexpected message %s", c->index, payload);
  return 0;
}


static int
client_done (const struct Client *c)
{
  unsigned int s;

  for (s = 0; s < SENDERS; s++)
    if (c->next_seq[s] != ROUNDS)
      return 0;
  return (ECHOES == c->echoes)
         && (SENDERS * (ROUNDS / BROADCAST_EVERY) == c->broadcasts);
}


/* Reads what is there (one recv) and judges it; -1 on EOF or error. */
static int
client_read (struct Client *c, char *buf, size_t size)
{
  ssize_t n = recv (c->fd, buf, size, 0);
  size_t off = 0;

  if (n <= 0)
    return -1;
  while (off < (size_t) n)
  {
    size_t used = 0;
    char *payload = NULL;
    size_t plen = 0;
    enum MHD_WEBSOCKET_STATUS st = MHD_websocket_decode (
      c->ws, buf + off, (size_t) n - off, &used, &payload, &plen);

    off += used;
    if (MHD_WEBSOCKET_STATUS_OK == st)
      break;
    if (st < 0)
    {
      FAIL ("client %d: decode error %d", c->index, (int) st);
      return -1;
    }
    if (client_judge (c, st, payload))
    {
      MHD_websocket_free (c->ws, payload);
      return -1;
    }
    MHD_websocket_free (c->ws, payload);
  }
  return 0;
}


static void *
client_main (void *cls)
{
  struct Client *c = cls;
  char buf[65536];
  unsigned int i;

  /* Echo requests, read as we go so that neither side stalls. */
  for (i = 0; i < ECHOES; i++)
  {
    char text[32];

    snprintf (text, sizeof (text), "e%u", i);
    if (0 != client_send (c, text))
    {
      FAIL ("client %d: send failed", c->index);
      return NULL;
    }
    if ((0 == i % 16) && (0 != client_read (c, buf, sizeof (buf))))
    {
      FAIL ("client %d: the server went away", c->index);
      return NULL;
    }
  }
  while (! client_done (c))
    if (0 != client_read (c, buf, sizeof (buf)))
    {
      FAIL ("client %d: ended with %u echoes, %u broadcasts, %u posted",
            c->index, c->echoes, c->broadcasts, c->posted);
      return NULL;
    }
  return NULL;
}


static void *
sender_main (void *cls)
{
  unsigned int s = (unsigned int) (uintptr_t) cls;
  unsigned int r;
  unsigned int k;

  for (r = 0; r < ROUNDS; r++)
  {
    for (k = 0; k < CLIENTS; k++)
    {
      char text[32];
      enum MHD_WEBSOCKET_SEND_RESULT res;

      snprintf (text, sizeof (text), "s%u:%u", s, r);
      res = MHD_websocket_server_send (server, ids[k], 0, text, strlen (text));
      if (MHD_WEBSOCKET_SEND_OK != res)
        FAIL ("sender %u: send to %llu: %d", s, ids[k], (int) res);
    }
    if (0 == (r + 1) % BROADCAST_EVERY)
    {
      struct MHD_WebSocketBroadcast *b;
      char text[32];

      snprintf (text, sizeof (text), "b%u", s);
      /* Odd senders' broadcasts get no shares. */
      bc_creating = 1;
      if (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_broadcast_create (
            &b, 0, text, strlen (text), (s & 1) ? &bc_alloc_stingy : &bc_alloc,
            &bc_free))
        FAIL ("sender %u: broadcast_create", s);
      else
      {
        if (MHD_WEBSOCKET_STATUS_OK
            != MHD_websocket_server_broadcast (server, MHD_WEBSOCKET_ALL_GROUPS,
                                               b))
          FAIL ("sender %u: broadcast", s);
        MHD_websocket_broadcast_release (b);
      }
      bc_creating = 0;
    }
  }
  for (r = 0; r < POSTS_PER_SENDER; r++)
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_loop_post (
          MHD_websocket_server_loop (
            server, r % MHD_websocket_server_loop_count (server)),
          &count_post, NULL))
      FAIL ("sender %u: post", s);
  return NULL;
}


/* One run on one backend; 0 when it passed. */
static int
run (int use_poll)
{
  struct MHD_WebSocketSessionConfig *cfg;
  struct MHD_Daemon *daemon;
  const union MHD_DaemonInfo *info;
  struct Client clients[CLIENTS];
  pthread_t ct[CLIENTS];
  pthread_t st[SENDERS];
  unsigned int i;

  opened = ended = posts_run = 0;
  bc_live = bc_shares = bc_refused = 0;
  next_tag = 0;
  failures = 0;
  cfg = MHD_websocket_session_config_create ();
  if (NULL == cfg)
    return 1;
  MHD_websocket_session_config_set_callbacks (cfg, &on_message, &on_end);
  if ((MHD_WEBSOCKET_STATUS_OK != MHD_websocket_server_create (&server, cfg))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_server_set (server,
                                       MHD_WEBSOCKET_SERVER_OPTION_THREADS, 3))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_server_set (
            server, MHD_WEBSOCKET_SERVER_OPTION_USE_POLL, use_poll)))
    return 1;
  MHD_websocket_session_config_free (cfg);
  MHD_websocket_server_set_open_callback (server, &on_open);
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_server_start (server))
    return 1;
  daemon = MHD_start_daemon (MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_UPGRADE
                               | MHD_USE_ERROR_LOG,
                             0, NULL, NULL, &on_request, NULL, MHD_OPTION_END);
  if (NULL == daemon)
  {
    fprintf (stderr, "cannot start libmicrohttpd\n");
    return 1;
  }
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  memset (clients, 0, sizeof (clients));
  for (i = 0; i < CLIENTS; i++)
  {
    clients[i].index = (int) i;
    clients[i].port = info->port;
    if (0 != client_connect (&clients[i]))
    {
      fprintf (stderr, "client %u cannot connect\n", i);
      return 1;
    }
  }
  pthread_mutex_lock (&lock);
  while (opened < CLIENTS)
    pthread_cond_wait (&cond, &lock);
  pthread_mutex_unlock (&lock);

  for (i = 0; i < CLIENTS; i++)
    pthread_create (&ct[i], NULL, &client_main, &clients[i]);
  for (i = 0; i < SENDERS; i++)
    pthread_create (&st[i], NULL, &sender_main, (void *) (uintptr_t) i);
  for (i = 0; i < SENDERS; i++)
    pthread_join (st[i], NULL);
  for (i = 0; i < CLIENTS; i++)
    pthread_join (ct[i], NULL);

  /* All quiet: a task of a client's loop sends on its session directly.
     No event of that connection follows, so the message is written only
     if the loop heard of the queued output from the session. */
  for (i = 0; i < CLIENTS; i++)
  {
    char buf[4096];
    struct timeval tv = { 2, 0 };

    (void) setsockopt (clients[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                       sizeof (tv));
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_loop_post (loops[i], &send_posted,
                                    (void *) (uintptr_t) i))
      FAIL ("cannot post to client %u's loop", i);
    while ((0 == clients[i].posted)
           && (0 == client_read (&clients[i], buf, sizeof (buf))))
      ;
    if (1 != clients[i].posted)
      FAIL ("client %u: the send of a posted task was not written", i);
  }

  /* One client closes: once its end is reported, its id is gone. */
  {
    char *frame;
    size_t len;
    char buf[4096];
    struct Client *c = &clients[0];

    if ((MHD_WEBSOCKET_STATUS_OK
         != MHD_websocket_encode_close (c->ws, 1000, NULL, 0, &frame, &len))
        || (0 != send_all (c->fd, frame, len)))
      FAIL ("cannot close client 0");
    else
      MHD_websocket_free (c->ws, frame);
    while (0 == client_read (c, buf, sizeof (buf)))
      ;
    pthread_mutex_lock (&lock);
    while (ended < 1)
      pthread_cond_wait (&cond, &lock);
    pthread_mutex_unlock (&lock);
    if (MHD_WEBSOCKET_SEND_NO_CONNECTION
        != MHD_websocket_server_send (server, ids[0], 0, "late", 4))
      FAIL ("a send to an ended connection did not report it");
    if (MHD_WEBSOCKET_SEND_NO_CONNECTION
        != MHD_websocket_server_send (server, 0, 0, "none", 4))
      FAIL ("a send to id 0 did not report it");
  }

  MHD_websocket_server_stop (server, "test over", 2000);
  MHD_stop_daemon (daemon);
  if (CLIENTS != ended)
    FAIL ("%u of %u connections ended", ended, CLIENTS);
  if (SENDERS * POSTS_PER_SENDER != posts_run)
    FAIL ("%u of %u posts ran", posts_run, SENDERS * POSTS_PER_SENDER);
  MHD_websocket_server_free (server);
  /* Every broadcast, share and frame is freed; both ways of holding a
     broadcast were taken. */
  if (0 != bc_live)
    FAIL ("%u blocks of the broadcasts not freed", bc_live);
  if ((0 == bc_shares) || (0 == bc_refused))
    FAIL ("%u shares made, %u refused: a path went untested", bc_shares,
          bc_refused);
  for (i = 0; i < CLIENTS; i++)
  {
    close (clients[i].fd);
    MHD_websocket_stream_free (clients[i].ws);
  }
  printf ("%s backend: %u clients, %u senders, %u messages each way, %d "
          "failures\n",
          use_poll ? "poll" : "epoll", CLIENTS, SENDERS,
          CLIENTS * (SENDERS * ROUNDS + ECHOES), failures);
  return (0 == failures) ? 0 : 1;
}


int
main (void)
{
  const char *backend = getenv ("WS_LOOP_BACKEND");
  int ret = 0;

  alarm (120);
  signal (SIGPIPE, SIG_IGN);
  /* Both backends, unless one is named. */
  if ((NULL == backend) || (0 != strcmp (backend, "poll")))
    ret |= run (0);
  if ((NULL == backend) || (0 != strcmp (backend, "epoll")))
    ret |= run (1);
  return ret;
}
