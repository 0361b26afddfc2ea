/*
  chatbus.c -- the chat example's link to Redis; see chatbus.h.

  Redis keys (one cluster per Redis database):
    chat:events   the channel every chat event is published on
    chat:online   sorted set of members, "SERVER\tID\tNAME", scored with
                  the time (ms since the epoch) their entry expires
  and each process names its command connection "chat-pub-SERVER"
  (CLIENT SETNAME): the connections Redis lists under that prefix are the
  chat processes alive, since Redis drops a dead process's connections
  as soon as its kernel closes them.

  Two connections: a subscribed connection accepts nothing but
  SUBSCRIBE-family commands, so a second one carries PUBLISH and the
  presence commands.  Both live in one event loop of the server: the
  adapter below turns hiredis's ev hooks (addRead, delWrite, cleanup...)
  into that loop's fd watches, a timer of the loop runs deadlines and the
  presence upkeep, and requests from other threads are posted to it.
*/

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "chatbus.h"
#include <microhttpd_ws.h>

#define CHANNEL "chat:events"
#define ONLINE_KEY "chat:online"
#define PUB_NAME_PREFIX "chat-pub-"

/* The loop wakes at least this often (ms) to check deadlines. */
#define TICK_MS 100
/* Presence work (refresh, expiry, process count) every PRESENCE_TICKS. */
#define PRESENCE_TICKS 5
/* A member entry lives this long (ms) unless refreshed; its server
   refreshes it every PRESENCE_TICKS * TICK_MS. */
#define MEMBER_TTL_MS 5000
/* Redis must answer within this (ms), or the link is reset. */
#define REPLY_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 1500
/* Reconnection backoff (ms), doubled per failure, jittered. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
/* How many names a welcome or a roster carries at most. */
#define MAX_NAMES 100
/* The roster goes out this many presence rounds after the link came
   back, once every server had a chance to refresh its members. */
#define ROSTER_DELAY 3

enum LinkState
{
  LINK_DOWN,
  LINK_CONNECTING, /* TCP connecting, or (subscriber) not subscribed yet */
  LINK_UP
};

struct Link
{
  struct ChatBus *bus;
  const char *what;
  int subscriber;
  redisAsyncContext *ac;
  struct MHD_WebSocketWatch *watch;
  enum LinkState state;
  int want_read;
  int want_write;
  long long deadline; /* of the connection attempt */
  long long retry_at;
  long long backoff;
};

enum ReqType
{
  REQ_PUBLISH,
  REQ_BROADCAST,
  REQ_JOIN,
  REQ_LEAVE,
  REQ_STOP
};

/* A request from a connection thread, queued for the bus thread. */
struct Req
{
  struct ChatBus *bus;
  enum ReqType type;
  void *token;
  unsigned long num; /* seq or member id */
  size_t len;
  char data[]; /* JSON or name, NUL-terminated */
};

/* A PUBLISH waiting for its reply; freed by the reply callback (which
   hiredis calls exactly once, with NULL if the link went away). */
struct Pending
{
  struct Pending *prev;
  struct Pending *next;
  struct ChatBus *bus;
  void *token;
  unsigned long seq;
  long long deadline;
  int answered;
  /* Subscribers the PUBLISH reached, while the count of processes is
     checked again. */
  long long reached;
};

struct Member
{
  struct Member *prev;
  struct Member *next;
  unsigned long id;
  char *key;
  size_t key_len;
};

struct ChatBus
{
  struct ChatBusHooks hooks;
  char *host;
  unsigned int port;
  char *server_id;
  struct MHD_WebSocketLoop *loop;

  /* Under lock: set when shutdown is over. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int shut;

  /* In the loop only: */
  struct MHD_WebSocketTimer *timer;
  struct Link pub;
  struct Link sub;
  struct Pending *pend_head;
  struct Pending *pend_tail;
  struct Member *members;
  size_t member_count;
  unsigned long servers_alive;
  long long last_reply; /* on pub, while replies are outstanding */
  unsigned int ticks;
  int roster_due;
  int told_up;
  int stopping;
  long long stop_deadline;
};


static long long
mono_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* Expiry scores are wall-clock times, comparable between machines whose
   clocks are synchronised. */
static long long
wall_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* The name part of a member entry. */
static const char *
member_name (const char *key, size_t len)
{
  const char *p = memchr (key, '\t', len);

  if (NULL != p)
    p = memchr (p + 1, '\t', len - (size_t) (p + 1 - key));
  return (NULL != p) ? p + 1 : key;
}


/* ------------------------------------------------------------------ */
/* The hiredis adapter: interest flags for the poll() loop            */
/* ------------------------------------------------------------------ */

static void
link_watch_update (struct Link *l)
{
  if (NULL != l->watch)
    (void) MHD_websocket_watch_set (
      l->watch, (l->want_read ? MHD_WEBSOCKET_WATCH_READ : 0)
                  | (l->want_write ? MHD_WEBSOCKET_WATCH_WRITE : 0));
}


static void
on_add_read (void *data)
{
  struct Link *l = data;

  l->want_read = 1;
  link_watch_update (l);
}


static void
on_del_read (void *data)
{
  struct Link *l = data;

  l->want_read = 0;
  link_watch_update (l);
}


static void
on_add_write (void *data)
{
  struct Link *l = data;

  l->want_write = 1;
  link_watch_update (l);
}


static void
on_del_write (void *data)
{
  struct Link *l = data;

  l->want_write = 0;
  link_watch_update (l);
}


/* hiredis calls this before it closes the socket. */
static void
on_cleanup (void *data)
{
  struct Link *l = data;

  l->want_read = 0;
  l->want_write = 0;
  MHD_websocket_watch_free (l->watch);
  l->watch = NULL;
}


/* The socket is ready: hiredis reads or writes. */
static void
on_ready (struct MHD_WebSocketWatch *w, int events, void *arg)
{
  struct Link *l = arg;
  redisAsyncContext *ac = l->ac;

  (void) w;
  if (NULL == ac)
    return;
  if (events & MHD_WEBSOCKET_WATCH_WRITE)
    redisAsyncHandleWrite (ac);
  /* The write may have ended the connection and freed ac. */
  if ((l->ac == ac) && (events & MHD_WEBSOCKET_WATCH_READ))
    redisAsyncHandleRead (ac);
}


/* ------------------------------------------------------------------ */
/* Link state                                                         */
/* ------------------------------------------------------------------ */

static int
bus_up (const struct ChatBus *b)
{
  return (LINK_UP == b->pub.state) && (LINK_UP == b->sub.state);
}


/* Tells the server when the pair of links changes state between usable
   and not. */
static void
link_changed (struct ChatBus *b)
{
  int up = bus_up (b);

  if (up == b->told_up)
    return;
  b->told_up = up;
  if (up)
    b->roster_due = ROSTER_DELAY;
  /* A server that stops closes its connections anyway. */
  if (b->stopping)
    return;
  if (NULL != b->hooks.link)
    b->hooks.link (b->hooks.cls, up);
}


/* The link is gone (its context freed or being freed by hiredis):
   schedule the next attempt.  Safe to call more than once. */
static void
link_lost (struct Link *l, const char *why)
{
  long long jitter;

  if (LINK_DOWN == l->state)
    return;
  l->ac = NULL;
  l->want_read = 0;
  l->want_write = 0;
  l->state = LINK_DOWN;
  jitter = l->backoff / 5;
  l->retry_at = mono_ms () + l->backoff - jitter
                + ((jitter > 0) ? (rand () % (2 * jitter + 1)) : 0);
  if (! l->bus->stopping)
    fprintf (stderr, "redis %s: %s; retrying in %lld ms\n", l->what,
             (NULL != why) ? why : "disconnected", l->backoff);
  l->backoff *= 2;
  if (l->backoff > BACKOFF_MAX_MS)
    l->backoff = BACKOFF_MAX_MS;
  link_changed (l->bus);
}


/* Drops the link on our side (not from a hiredis callback). */
static void
link_reset (struct Link *l, const char *why)
{
  redisAsyncContext *ac = l->ac;

  if (NULL != ac)
    redisAsyncFree (ac); /* may call on_disconnect -> link_lost */
  link_lost (l, why);
}


static void on_subscribed_message (redisAsyncContext *ac, void *r, void *priv);


static void
on_connect (const redisAsyncContext *cac, int status)
{
  struct Link *l = cac->data;

  if (REDIS_OK != status)
  {
    /* hiredis frees the context after this returns. */
    link_lost (l, cac->errstr);
    return;
  }
  if (l->subscriber)
  {
    /* Up once Redis confirms the subscription. */
    (void) redisAsyncCommand (l->ac, &on_subscribed_message, l,
                              "SUBSCRIBE " CHANNEL);
    return;
  }
  /* Named, this connection counts this process among those every
     message must reach (see on_published). */
  (void) redisAsyncCommand (l->ac, NULL, NULL, "CLIENT SETNAME %s%s",
                            PUB_NAME_PREFIX, l->bus->server_id);
  l->state = LINK_UP;
  l->backoff = BACKOFF_MIN_MS;
  l->bus->last_reply = mono_ms ();
  fprintf (stderr, "redis %s: connected\n", l->what);
  link_changed (l->bus);
}


static void
on_disconnect (const redisAsyncContext *cac, int status)
{
  struct Link *l = cac->data;

  link_lost (l, (REDIS_OK == status) ? "disconnected" : cac->errstr);
}


static void
link_connect (struct Link *l)
{
  struct ChatBus *b = l->bus;
  redisAsyncContext *ac;

  ac = redisAsyncConnect (b->host, (int) b->port);
  l->state = LINK_CONNECTING;
  if ((NULL == ac) || (0 != ac->err))
  {
    char why[160];

    snprintf (why, sizeof (why), "cannot connect to %s:%u: %s", b->host,
              b->port, (NULL != ac) ? ac->errstr : "out of memory");
    if (NULL != ac)
      redisAsyncFree (ac);
    link_lost (l, why);
    return;
  }
  ac->data = l;
  ac->ev.data = l;
  ac->ev.addRead = &on_add_read;
  ac->ev.delRead = &on_del_read;
  ac->ev.addWrite = &on_add_write;
  ac->ev.delWrite = &on_del_write;
  ac->ev.cleanup = &on_cleanup;
  l->watch = MHD_websocket_watch_create (b->loop, ac->c.fd, &on_ready, l);
  if (NULL == l->watch)
  {
    redisAsyncFree (ac);
    link_lost (l, "cannot watch the socket");
    return;
  }
  l->ac = ac;
  l->deadline = mono_ms () + CONNECT_TIMEOUT_MS;
  /* hiredis learns that the connection is made from the first write
     event, which setting the connect callback asks for. */
  (void) redisAsyncSetConnectCallback (ac, &on_connect);
  (void) redisAsyncSetDisconnectCallback (ac, &on_disconnect);
}


/* Issues a command on the publishing link; replies are timed from the
   moment a command goes out while none were outstanding. */
static int
pub_command (struct ChatBus *b, redisCallbackFn *fn, void *priv, int argc,
             const char **argv, const size_t *argvlen)
{
  if (LINK_UP != b->pub.state)
    return -1;
  if (NULL == b->pub.ac->replies.head)
    b->last_reply = mono_ms ();
  return (REDIS_OK
          == redisAsyncCommandArgv (b->pub.ac, fn, priv, argc, argv, argvlen))
           ? 0
           : -1;
}


/* Notes that the publishing link answered. */
static void
pub_heard (struct ChatBus *b, const void *reply)
{
  if (NULL != reply)
    b->last_reply = mono_ms ();
}


/* ------------------------------------------------------------------ */
/* Subscription                                                       */
/* ------------------------------------------------------------------ */

static void
on_subscribed_message (redisAsyncContext *ac, void *r, void *priv)
{
  struct Link *l = priv;
  struct ChatBus *b = l->bus;
  redisReply *reply = r;

  (void) ac;
  if ((NULL == reply) || (REDIS_REPLY_ARRAY != reply->type)
      || (reply->elements < 3) || (NULL == reply->element[0]->str))
    return;
  if (0 == strcmp (reply->element[0]->str, "message"))
  {
    if (REDIS_REPLY_STRING == reply->element[2]->type)
      b->hooks.deliver (b->hooks.cls, reply->element[2]->str,
                        reply->element[2]->len);
  }
  else if ((0 == strcmp (reply->element[0]->str, "subscribe"))
           && (LINK_UP != l->state))
  {
    l->state = LINK_UP;
    l->backoff = BACKOFF_MIN_MS;
    fprintf (stderr, "redis %s: subscribed to " CHANNEL "\n", l->what);
    link_changed (b);
  }
}


/* ------------------------------------------------------------------ */
/* Publishing                                                         */
/* ------------------------------------------------------------------ */

static void
pending_answer (struct Pending *p, int ok, const char *why)
{
  if (p->answered)
    return;
  p->answered = 1;
  if (NULL != p->token)
    p->bus->hooks.published (p->bus->hooks.cls, p->token, p->seq, ok, why);
}


static void
pending_done (struct Pending *p)
{
  struct ChatBus *b = p->bus;

  if (NULL != p->prev)
    p->prev->next = p->next;
  else
    b->pend_head = p->next;
  if (NULL != p->next)
    p->next->prev = p->prev;
  else
    b->pend_tail = p->prev;
  free (p);
}


/* The chat processes connected to Redis, in a CLIENT LIST reply. */
static unsigned long
count_servers (const redisReply *reply)
{
  const char *p;
  unsigned long n = 0;

  if ((NULL == reply) || (REDIS_REPLY_STRING != reply->type))
    return 0;
  for (p = reply->str; NULL != (p = strstr (p, " name=" PUB_NAME_PREFIX)); p++)
    n++;
  return n;
}


/* The second look: how many chat processes are connected now, after the
   PUBLISH (Redis answers in order). */
static void
on_recounted (redisAsyncContext *ac, void *r, void *priv)
{
  struct Pending *p = priv;
  struct ChatBus *b = p->bus;
  redisReply *reply = r;
  unsigned long alive;
  char why[96];

  (void) ac;
  pub_heard (b, reply);
  if (NULL == reply)
    pending_answer (p, 0, "the connection to Redis was lost");
  else
  {
    alive = count_servers (reply);
    b->servers_alive = alive;
    if (p->reached >= (long long) alive)
      pending_answer (p, 1, NULL);
    else
    {
      /* A process that is connected but not subscribed missed it. */
      snprintf (why, sizeof (why), "it reached %lld of %lu servers", p->reached,
                alive);
      pending_answer (p, 0, why);
    }
  }
  pending_done (p);
}


static void
on_published (redisAsyncContext *ac, void *r, void *priv)
{
  struct Pending *p = priv;
  struct ChatBus *b = p->bus;
  redisReply *reply = r;
  const char *argv[4] = { "CLIENT", "LIST", "TYPE", "normal" };
  size_t argvlen[4] = { 6, 4, 4, 6 };

  (void) ac;
  pub_heard (b, reply);
  if (NULL == reply)
    pending_answer (p, 0, "the connection to Redis was lost");
  else if (REDIS_REPLY_INTEGER != reply->type)
    pending_answer (p, 0, "Redis refused it");
  else if ((unsigned long long) reply->integer < b->servers_alive)
  {
    /* Fewer subscribers than processes at the last count: a process
       may have lost its subscription, or may just have died (then its
       connections are gone now).  Count again before answering. */
    p->reached = reply->integer;
    if (0 == pub_command (b, &on_recounted, p, 4, argv, argvlen))
      return;
    pending_answer (p, 0, "Redis command failed");
  }
  else
    pending_answer (p, 1, NULL);
  pending_done (p);
}


static void
do_publish (struct ChatBus *b, void *token, unsigned long seq, const char *json,
            size_t len)
{
  struct Pending *p;
  const char *argv[3] = { "PUBLISH", CHANNEL, json };
  size_t argvlen[3] = { 7, sizeof (CHANNEL) - 1, len };

  if (! bus_up (b))
  {
    if (NULL != token)
      b->hooks.published (b->hooks.cls, token, seq, 0,
                          "no link to the other servers (Redis)");
    else
      b->hooks.deliver (b->hooks.cls, json, len);
    return;
  }
  p = calloc (1, sizeof (*p));
  if (NULL == p)
  {
    if (NULL != token)
      b->hooks.published (b->hooks.cls, token, seq, 0, "out of memory");
    return;
  }
  p->bus = b;
  p->token = token;
  p->seq = seq;
  p->deadline = mono_ms () + REPLY_TIMEOUT_MS;
  if (0 != pub_command (b, &on_published, p, 3, argv, argvlen))
  {
    pending_answer (p, 0, "Redis command failed");
    free (p);
    return;
  }
  p->prev = b->pend_tail;
  if (NULL != b->pend_tail)
    b->pend_tail->next = p;
  else
    b->pend_head = p;
  b->pend_tail = p;
}


/* ------------------------------------------------------------------ */
/* Presence                                                           */
/* ------------------------------------------------------------------ */

/* The state of a chain of commands (join: ZADD, ZCARD, ZRANGE; leave or
   expiry: ZREM, ZCARD; roster: ZCARD, ZRANGE).  hiredis answers each
   command, so the last callback of a chain always runs and frees it. */
struct Chain
{
  struct ChatBus *bus;
  void *token;
  int failed;
  unsigned long online;
  int roster;
  char *name;
};


static struct Chain *
chain_new (struct ChatBus *b, void *token, const char *name, size_t len)
{
  struct Chain *ch = calloc (1, sizeof (*ch));

  if (NULL == ch)
    return NULL;
  ch->bus = b;
  ch->token = token;
  if (NULL != name)
  {
    ch->name = malloc (len + 1);
    if (NULL == ch->name)
    {
      free (ch);
      return NULL;
    }
    memcpy (ch->name, name, len);
    ch->name[len] = '\0';
  }
  return ch;
}


static void
chain_free (struct Chain *ch)
{
  free (ch->name);
  free (ch);
}


/* A reply that is not the integer expected fails the chain. */
static void
on_chain_step (redisAsyncContext *ac, void *r, void *priv)
{
  struct Chain *ch = priv;
  redisReply *reply = r;

  (void) ac;
  pub_heard (ch->bus, reply);
  if ((NULL == reply) || (REDIS_REPLY_INTEGER != reply->type))
    ch->failed = 1;
}


static void
on_chain_count (redisAsyncContext *ac, void *r, void *priv)
{
  struct Chain *ch = priv;
  redisReply *reply = r;

  on_chain_step (ac, r, priv);
  if (! ch->failed)
    ch->online = (unsigned long) reply->integer;
}


/* Last step of join and roster: the list of names. */
static void
on_chain_names (redisAsyncContext *ac, void *r, void *priv)
{
  struct Chain *ch = priv;
  struct ChatBus *b = ch->bus;
  redisReply *reply = r;
  const char *names[MAX_NAMES];
  size_t n = 0;
  size_t i;

  (void) ac;
  pub_heard (b, reply);
  if ((NULL == reply) || (REDIS_REPLY_ARRAY != reply->type))
    ch->failed = 1;
  else
    for (i = 0; (i < reply->elements) && (n < MAX_NAMES); i++)
      if (REDIS_REPLY_STRING == reply->element[i]->type)
        names[n++] =
          member_name (reply->element[i]->str, reply->element[i]->len);
  if (ch->roster)
  {
    if (! ch->failed)
      b->hooks.roster (b->hooks.cls, ch->online, names, n);
  }
  else
    b->hooks.joined (b->hooks.cls, ch->token, ! ch->failed, ch->online, names,
                     n);
  chain_free (ch);
}


/* Last step of a leave: announce it if this process removed the entry
   (so exactly one process announces each leave). */
static void
on_chain_left (redisAsyncContext *ac, void *r, void *priv)
{
  struct Chain *ch = priv;

  on_chain_count (ac, r, priv);
  if (! ch->failed)
    ch->bus->hooks.left (ch->bus->hooks.cls, ch->name, ch->online);
  chain_free (ch);
}


/* ZREM's reply: 1 if this process took the entry off. */
static void
on_chain_removed (redisAsyncContext *ac, void *r, void *priv)
{
  struct Chain *ch = priv;
  redisReply *reply = r;
  const char *argv[2] = { "ZCARD", ONLINE_KEY };
  size_t argvlen[2] = { 5, sizeof (ONLINE_KEY) - 1 };

  on_chain_step (ac, r, priv);
  if ((! ch->failed) && (1 == reply->integer)
      && (0 == pub_command (ch->bus, &on_chain_left, ch, 2, argv, argvlen)))
    return;
  chain_free (ch);
}


static void
remove_entry (struct ChatBus *b, const char *key, size_t key_len)
{
  const char *name = member_name (key, key_len);
  struct Chain *ch;
  const char *argv[3] = { "ZREM", ONLINE_KEY, key };
  size_t argvlen[3] = { 4, sizeof (ONLINE_KEY) - 1, key_len };

  ch = chain_new (b, NULL, name, key_len - (size_t) (name - key));
  if (NULL == ch)
    return;
  if (0 != pub_command (b, &on_chain_removed, ch, 3, argv, argvlen))
    chain_free (ch);
}


/* Expired entries: every process tries to remove each, and the one whose
   ZREM removed it announces the leave. */
static void
on_expired (redisAsyncContext *ac, void *r, void *priv)
{
  struct ChatBus *b = priv;
  redisReply *reply = r;
  size_t i;

  (void) ac;
  pub_heard (b, reply);
  if ((NULL == reply) || (REDIS_REPLY_ARRAY != reply->type))
    return;
  for (i = 0; i < reply->elements; i++)
    if (REDIS_REPLY_STRING == reply->element[i]->type)
    {
      fprintf (stderr, "redis: the entry of %s expired\n",
               member_name (reply->element[i]->str, reply->element[i]->len));
      remove_entry (b, reply->element[i]->str, reply->element[i]->len);
    }
}


static void
on_servers_counted (redisAsyncContext *ac, void *r, void *priv)
{
  struct ChatBus *b = priv;
  redisReply *reply = r;

  (void) ac;
  pub_heard (b, reply);
  if (NULL != reply)
    b->servers_alive = count_servers (reply);
}


static void
on_ignored (redisAsyncContext *ac, void *r, void *priv)
{
  (void) ac;
  pub_heard (priv, r);
}


/* Issues ZCARD then ZRANGE for the first names; the chain's last
   callback reports them. */
static void
count_and_list (struct ChatBus *b, struct Chain *ch)
{
  const char *argv[4] = { "ZCARD", ONLINE_KEY, "0", "" };
  size_t argvlen[4] = { 5, sizeof (ONLINE_KEY) - 1, 1, 0 };
  char last[24];

  if (0 != pub_command (b, &on_chain_count, ch, 2, argv, argvlen))
  {
    ch->failed = 1;
    on_chain_names (NULL, NULL, ch);
    return;
  }
  snprintf (last, sizeof (last), "%d", MAX_NAMES - 1);
  argv[0] = "ZRANGE";
  argvlen[0] = 6;
  argv[3] = last;
  argvlen[3] = strlen (last);
  /* Commands on one connection cannot fail one by one: if this one is
     refused, so was the ZCARD, and its callback runs with NULL. */
  (void) pub_command (b, &on_chain_names, ch, 4, argv, argvlen);
}


/* One round of presence upkeep, every PRESENCE_TICKS ticks. */
static void
presence_round (struct ChatBus *b)
{
  char now_s[24];
  char exp_s[24];
  long long now = wall_ms ();
  const char **argv;
  size_t *argvlen;
  size_t n;
  struct Member *m;

  if (LINK_UP != b->pub.state)
    return;
  snprintf (now_s, sizeof (now_s), "%lld", now);
  /* The chat processes alive: what every message should reach. */
  {
    const char *a[4] = { "CLIENT", "LIST", "TYPE", "normal" };
    size_t al[4] = { 6, 4, 4, 6 };

    (void) pub_command (b, &on_servers_counted, b, 4, a, al);
  }
  /* Our members, refreshed in one ZADD. */
  if (b->member_count > 0)
  {
    n = 2 + 2 * b->member_count;
    argv = malloc (n * sizeof (*argv));
    argvlen = malloc (n * sizeof (*argvlen));
    if ((NULL != argv) && (NULL != argvlen))
    {
      size_t i = 2;

      snprintf (exp_s, sizeof (exp_s), "%lld", now + MEMBER_TTL_MS);
      argv[0] = "ZADD";
      argvlen[0] = 4;
      argv[1] = ONLINE_KEY;
      argvlen[1] = sizeof (ONLINE_KEY) - 1;
      for (m = b->members; NULL != m; m = m->next)
      {
        argv[i] = exp_s;
        argvlen[i++] = strlen (exp_s);
        argv[i] = m->key;
        argvlen[i++] = m->key_len;
      }
      (void) pub_command (b, &on_ignored, b, (int) n, argv, argvlen);
    }
    free (argv);
    free (argvlen);
  }
  /* Entries nobody refreshed: their servers are gone. */
  {
    const char *a[4] = { "ZRANGEBYSCORE", ONLINE_KEY, "-inf", now_s };
    size_t al[4] = { 13, sizeof (ONLINE_KEY) - 1, 4, strlen (now_s) };

    (void) pub_command (b, &on_expired, b, 4, a, al);
  }
  if ((b->roster_due > 0) && (0 == --b->roster_due))
  {
    struct Chain *ch = chain_new (b, NULL, NULL, 0);

    if (NULL != ch)
    {
      ch->roster = 1;
      count_and_list (b, ch);
    }
  }
}


static char *
member_key (struct ChatBus *b, unsigned long id, const char *name, size_t *len)
{
  size_t n = strlen (b->server_id) + strlen (name) + 32;
  char *key = malloc (n);

  if (NULL == key)
    return NULL;
  snprintf (key, n, "%s\t%lu\t%s", b->server_id, id, name);
  *len = strlen (key);
  return key;
}


static void
do_join (struct ChatBus *b, void *token, unsigned long id, const char *name)
{
  struct Member *m = calloc (1, sizeof (*m));
  struct Chain *ch;
  char exp_s[24];
  const char *argv[4] = { "ZADD", ONLINE_KEY, exp_s, NULL };
  size_t argvlen[4] = { 4, sizeof (ONLINE_KEY) - 1, 0, 0 };

  if (NULL != m)
  {
    m->id = id;
    m->key = member_key (b, id, name, &m->key_len);
    if (NULL == m->key)
    {
      free (m);
      m = NULL;
    }
  }
  ch = (NULL != m) ? chain_new (b, token, NULL, 0) : NULL;
  if (NULL == ch)
  {
    if (NULL != m)
      free (m->key);
    free (m);
    b->hooks.joined (b->hooks.cls, token, 0, 0, NULL, 0);
    return;
  }
  m->next = b->members;
  if (NULL != b->members)
    b->members->prev = m;
  b->members = m;
  b->member_count++;
  if (! bus_up (b))
  {
    /* The next presence round after the link is back adds it. */
    ch->failed = 1;
    on_chain_names (NULL, NULL, ch);
    return;
  }
  snprintf (exp_s, sizeof (exp_s), "%lld", wall_ms () + MEMBER_TTL_MS);
  argvlen[2] = strlen (exp_s);
  argv[3] = m->key;
  argvlen[3] = m->key_len;
  if (0 != pub_command (b, &on_chain_step, ch, 4, argv, argvlen))
  {
    ch->failed = 1;
    on_chain_names (NULL, NULL, ch);
    return;
  }
  count_and_list (b, ch);
}


static void
do_leave (struct ChatBus *b, unsigned long id)
{
  struct Member *m;

  for (m = b->members; NULL != m; m = m->next)
    if (m->id == id)
      break;
  if (NULL == m)
    return;
  if (NULL != m->prev)
    m->prev->next = m->next;
  else
    b->members = m->next;
  if (NULL != m->next)
    m->next->prev = m->prev;
  b->member_count--;
  /* Without Redis the entry expires, and whoever removes it announces
     the leave then. */
  if (LINK_UP == b->pub.state)
    remove_entry (b, m->key, m->key_len);
  free (m->key);
  free (m);
}


/* ------------------------------------------------------------------ */
/* Requests, the timer, starting and stopping                         */
/* ------------------------------------------------------------------ */

/* Shutdown: this process's members are taken off, and the timer ends
   it once Redis answered (or did not, in time); closing the connections
   takes the process off the count. */
static void
do_stop (struct ChatBus *b)
{
  if (b->stopping)
    return;
  b->stopping = 1;
  b->stop_deadline = mono_ms () + 1000;
  while (NULL != b->members)
    do_leave (b, b->members->id);
}


static void
run_req (struct ChatBus *b, struct Req *r)
{
  switch (r->type)
  {
  case REQ_PUBLISH:
    do_publish (b, r->token, r->num, r->data, r->len);
    break;
  case REQ_BROADCAST:
    do_publish (b, NULL, 0, r->data, r->len);
    break;
  case REQ_JOIN:
    do_join (b, r->token, r->num, r->data);
    break;
  case REQ_LEAVE:
    do_leave (b, r->num);
    break;
  case REQ_STOP:
    do_stop (b);
    break;
  }
}


static void
req_task (struct MHD_WebSocketLoop *loop, void *arg)
{
  struct Req *r = arg;

  (void) loop;
  run_req (r->bus, r);
  free (r);
}


/* Runs a request in the bus's loop: at once when called there (a hook
   announcing a leave while the bus stops must publish before the links
   close), otherwise posted. */
static void
submit (struct ChatBus *b, enum ReqType type, void *token, unsigned long num,
        const char *data, size_t len)
{
  struct Req *r = malloc (sizeof (*r) + len + 1);

  if (NULL != r)
  {
    r->bus = b;
    r->type = type;
    r->token = token;
    r->num = num;
    r->len = len;
    if (len > 0)
      memcpy (r->data, data, len);
    r->data[len] = '\0';
    if (MHD_websocket_loop_current () == b->loop)
    {
      req_task (b->loop, r);
      return;
    }
    if (0 == MHD_websocket_loop_post (b->loop, &req_task, r))
      return;
    free (r);
  }
  /* Answered here, so that the caller's reference is released. */
  if (REQ_PUBLISH == type)
    b->hooks.published (b->hooks.cls, token, num, 0, "the server is stopping");
  else if (REQ_JOIN == type)
    b->hooks.joined (b->hooks.cls, token, 0, 0, NULL, 0);
}


/* Every TICK_MS: connection attempts and deadlines, presence upkeep
   every PRESENCE_TICKS, and the end of a shutdown. */
static void
on_tick (struct MHD_WebSocketTimer *t, void *arg)
{
  struct ChatBus *b = arg;
  long long now = mono_ms ();
  struct Link *links[2] = { &b->pub, &b->sub };
  struct Pending *p;
  int late = 0;
  size_t i;

  for (i = 0; i < 2; i++)
  {
    struct Link *l = links[i];

    if ((LINK_DOWN == l->state) && (now >= l->retry_at) && ! b->stopping)
      link_connect (l);
    else if ((LINK_CONNECTING == l->state) && (now > l->deadline))
      link_reset (l, "no connection in time");
  }
  /* A reply may be waiting in the socket while this loop was busy with
     its members: read what has come before judging Redis late. */
  for (i = 0; i < 2; i++)
    if ((LINK_UP == links[i]->state) && links[i]->want_read)
      redisAsyncHandleRead (links[i]->ac);
  now = mono_ms ();
  /* A publish not answered in time fails now, not later; the link is
     reset, since a Redis that stopped answering is as good as gone. */
  for (p = b->pend_head; NULL != p; p = p->next)
    if ((! p->answered) && (now > p->deadline))
    {
      pending_answer (p, 0, "Redis did not answer in time");
      late = 1;
    }
  if ((LINK_UP == b->pub.state) && (NULL != b->pub.ac->replies.head)
      && (now - b->last_reply > REPLY_TIMEOUT_MS))
    late = 1;
  if (late && (LINK_UP == b->pub.state))
  {
    link_reset (&b->pub, "Redis did not answer in time");
    link_reset (&b->sub, "reset with the publishing link");
  }
  if (b->stopping)
  {
    if ((LINK_UP == b->pub.state) && (NULL != b->pub.ac->replies.head)
        && (now < b->stop_deadline))
    {
      MHD_websocket_timer_arm (t, TICK_MS);
      return;
    }
    /* Freeing the contexts answers what is still open with NULL. */
    link_reset (&b->pub, "stopped");
    link_reset (&b->sub, "stopped");
    pthread_mutex_lock (&b->lock);
    b->shut = 1;
    pthread_cond_broadcast (&b->cond);
    pthread_mutex_unlock (&b->lock);
    return;
  }
  if (0 == (++b->ticks % PRESENCE_TICKS))
    presence_round (b);
  MHD_websocket_timer_arm (t, TICK_MS);
}


static void
start_task (struct MHD_WebSocketLoop *loop, void *arg)
{
  struct ChatBus *b = arg;

  (void) loop;
  MHD_websocket_timer_arm (b->timer, 0);
}


struct ChatBus *
chat_bus_start (struct MHD_WebSocketLoop *loop, const char *host,
                unsigned int port, const char *server_id,
                const struct ChatBusHooks *hooks)
{
  struct ChatBus *b = calloc (1, sizeof (*b));
  pthread_condattr_t cattr;

  if (NULL == b)
    return NULL;
  b->hooks = *hooks;
  b->loop = loop;
  b->port = port;
  b->host = strdup (host);
  b->server_id = strdup (server_id);
  b->pub.bus = b->sub.bus = b;
  b->pub.what = "publisher";
  b->sub.what = "subscriber";
  b->sub.subscriber = 1;
  b->pub.backoff = b->sub.backoff = BACKOFF_MIN_MS;
  b->pub.state = b->sub.state = LINK_DOWN;
  b->timer = MHD_websocket_timer_create (loop, &on_tick, b);
  if ((NULL == b->host) || (NULL == b->server_id) || (NULL == b->timer))
    goto fail;
  pthread_condattr_init (&cattr);
  pthread_condattr_setclock (&cattr, CLOCK_MONOTONIC);
  pthread_cond_init (&b->cond, &cattr);
  pthread_condattr_destroy (&cattr);
  pthread_mutex_init (&b->lock, NULL);
  /* Timers are armed in their loop's thread. */
  if (0 != MHD_websocket_loop_post (loop, &start_task, b))
  {
    pthread_cond_destroy (&b->cond);
    pthread_mutex_destroy (&b->lock);
    goto fail;
  }
  return b;
fail:
  MHD_websocket_timer_free (b->timer);
  free (b->host);
  free (b->server_id);
  free (b);
  return NULL;
}


void
chat_bus_publish (struct ChatBus *bus, void *token, unsigned long seq,
                  const char *json, size_t len)
{
  submit (bus, REQ_PUBLISH, token, seq, json, len);
}


void
chat_bus_broadcast (struct ChatBus *bus, const char *json, size_t len)
{
  submit (bus, REQ_BROADCAST, NULL, 0, json, len);
}


void
chat_bus_join (struct ChatBus *bus, void *token, unsigned long id,
               const char *name)
{
  submit (bus, REQ_JOIN, token, id, name, strlen (name));
}


void
chat_bus_leave (struct ChatBus *bus, unsigned long id)
{
  submit (bus, REQ_LEAVE, NULL, id, NULL, 0);
}


void
chat_bus_shutdown (struct ChatBus *bus)
{
  struct timespec deadline;

  submit (bus, REQ_STOP, NULL, 0, NULL, 0);
  clock_gettime (CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += 2;
  pthread_mutex_lock (&bus->lock);
  while (! bus->shut)
    if (ETIMEDOUT == pthread_cond_timedwait (&bus->cond, &bus->lock, &deadline))
      break;
  pthread_mutex_unlock (&bus->lock);
}


void
chat_bus_free (struct ChatBus *bus)
{
  /* The loop has ended: nothing runs in it any more. */
  bus->stopping = 1;
  link_reset (&bus->pub, "stopped");
  link_reset (&bus->sub, "stopped");
  while (NULL != bus->members)
    do_leave (bus, bus->members->id);
  MHD_websocket_timer_free (bus->timer);
  pthread_cond_destroy (&bus->cond);
  pthread_mutex_destroy (&bus->lock);
  free (bus->host);
  free (bus->server_id);
  free (bus);
}
