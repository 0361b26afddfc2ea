/*
  test_examples.c -- runs the manual's examples against each other: the
  echo server of upgrade.c and receive_loop.c on a free port of
  127.0.0.1, the client of client.c, and the helpers of send.c, close.c
  and fragments.c.  If an example stops working, the manual that
  includes it is wrong, and this fails.
*/
#include "ex.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

static struct MHD_Daemon *daemon_;
static uint16_t port;

static void
start_server (void)
{
  struct sockaddr_in addr;
  const union MHD_DaemonInfo *info;

  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  daemon_ =
    MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD
                        | MHD_USE_THREAD_PER_CONNECTION | MHD_ALLOW_UPGRADE,
                      0, NULL, NULL, &ex_access_handler, NULL,
                      MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
  ck_assert_ptr_nonnull (daemon_);
  info = MHD_get_daemon_info (daemon_, MHD_DAEMON_INFO_BIND_PORT);
  ck_assert_ptr_nonnull (info);
  port = info->port;
}

static void
stop_server (void)
{
  ck_assert_uint_eq (ex_wait_for_sessions (10), 0);
  MHD_stop_daemon (daemon_);
  daemon_ = NULL;
}

/* Every socket read gives up after 10 s, so no test can hang. */
static void
connect_client (struct ex_conn *c)
{
  struct timeval tv = { 10, 0 };

  ck_assert_int_eq (ex_client_connect (c, port, "/"), 0);
  ck_assert_int_eq (
    setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv)), 0);
}

static void
disconnect_client (struct ex_conn *c)
{
  close (c->fd);
  ex_conn_destroy (c);
}

/* Reads until the client's decoder returns a frame (or fails). */
struct msg
{
  enum MHD_WEBSOCKET_STATUS status;
  char *data;
  size_t len;
};

struct reader
{
  char buf[4096];
  size_t have;
  size_t off;
};

static void
read_msg (struct ex_conn *c, struct reader *r, struct msg *m)
{
  for (;;)
  {
    size_t used;

    if (r->off < r->have)
    {
      m->status = MHD_websocket_decode (
        c->ws, r->buf + r->off, r->have - r->off, &used, &m->data, &m->len);
      r->off += used;
      if (MHD_WEBSOCKET_STATUS_OK != m->status)
        return;
    }
    {
      ssize_t got = recv (c->fd, r->buf, sizeof (r->buf), 0);
      ck_assert_msg (got > 0, "the server closed or timed out");
      r->have = (size_t) got;
      r->off = 0;
    }
  }
}

static void
expect_msg (struct ex_conn *c, struct reader *r,
            enum MHD_WEBSOCKET_STATUS status, const char *data, size_t len)
{
  struct msg m;

  read_msg (c, r, &m);
  ck_assert_int_eq (m.status, status);
  ck_assert_uint_eq (m.len, len);
  if (0 != len)
    ck_assert_mem_eq (m.data, data, len);
  MHD_websocket_free (c->ws, m.data);
}

static void
expect_close (struct ex_conn *c, struct reader *r, unsigned short code)
{
  struct msg m;
  unsigned short got;

  read_msg (c, r, &m);
  ck_assert_int_eq (m.status, MHD_WEBSOCKET_STATUS_CLOSE_FRAME);
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (m.data, m.len, &got, NULL, NULL),
    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (got, code);
  MHD_websocket_free (c->ws, m.data);
  /* The server closes the connection after its close frame. */
  ck_assert_int_eq (recv (c->fd, r->buf, sizeof (r->buf), 0), 0);
}

START_TEST (test_refuses_plain_request)
{
  static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  struct sockaddr_in addr;
  struct timeval tv = { 10, 0 };
  char buf[256];
  ssize_t got;
  int fd;

  start_server ();
  fd = socket (AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge (fd, 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons (port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  ck_assert_int_eq (connect (fd, (struct sockaddr *) &addr, sizeof (addr)), 0);
  ck_assert_int_eq (ex_send_all (fd, req, sizeof (req) - 1), 0);
  got = recv (fd, buf, sizeof (buf) - 1, 0);
  ck_assert_int_gt (got, 12);
  buf[got] = '\0';
  ck_assert_msg (0 == strncmp (buf, "HTTP/1.1 400 ", 13), "got: %s", buf);
  close (fd);
  stop_server ();
}
END_TEST

START_TEST (test_echo_ping_close)
{
  struct ex_conn c;
  struct reader r = { .have = 0 };
  char *frame;
  size_t frame_len;

  start_server ();
  connect_client (&c);
  ck_assert_int_eq (ex_send_text (&c, "hello", 5), 0);
  expect_msg (&c, &r, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "hello", 5);

  ck_assert_int_eq (
    MHD_websocket_encode_binary (
      c.ws, "\0\1\2", 3, MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len),
    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_int_eq (ex_send_frame (&c, frame, frame_len, 0), 0);
  MHD_websocket_free (c.ws, frame);
  expect_msg (&c, &r, MHD_WEBSOCKET_STATUS_BINARY_FRAME, "\0\1\2", 3);

  ck_assert_int_eq (
    MHD_websocket_encode_ping (c.ws, "abc", 3, &frame, &frame_len),
    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_int_eq (ex_send_frame (&c, frame, frame_len, 0), 0);
  MHD_websocket_free (c.ws, frame);
  expect_msg (&c, &r, MHD_WEBSOCKET_STATUS_PONG_FRAME, "abc", 3);

  /* The server echoes the close code. */
  ck_assert_int_eq (
    ex_send_close (&c, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY, "bye"), 0);
  /* Nothing goes out after a close frame. */
  ck_assert_int_eq (ex_send_text (&c, "late", 4), -1);
  expect_close (&c, &r, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY);
  disconnect_client (&c);
  stop_server ();
}
END_TEST

START_TEST (test_fragmented_send)
{
  /* "héllo wörld €" cut every 3 bytes: pieces end inside characters. */
  static const char text[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac!";
  struct ex_conn c;
  struct reader r = { .have = 0 };

  start_server ();
  connect_client (&c);
  ck_assert_int_eq (ex_send_text_fragmented (&c, text, sizeof (text) - 1, 3),
                    0);
  /* The server reassembles and echoes the message whole. */
  expect_msg (&c, &r, MHD_WEBSOCKET_STATUS_TEXT_FRAME, text, sizeof (text) - 1);
  /* A message may not end inside a character. */
  ck_assert_int_eq (ex_send_text_fragmented (&c, text, 2, 1), -1);
  ck_assert_int_eq (ex_send_close (&c, MHD_WEBSOCKET_CLOSEREASON_REGULAR, NULL),
                    0);
  expect_close (&c, &r, MHD_WEBSOCKET_CLOSEREASON_REGULAR);
  disconnect_client (&c);
  stop_server ();
}
END_TEST

START_TEST (test_bad_utf8_gets_1007)
{
  struct ex_conn c;
  struct reader r = { .have = 0 };
  char *frame;
  size_t frame_len;

  start_server ();
  connect_client (&c);
  /* The encoder refuses invalid text, so make a binary frame and turn it
     into a text frame: the opcode is not masked. */
  ck_assert_int_eq (MHD_websocket_encode_binary (
                      c.ws, "ok \xc0\xaf", 5, MHD_WEBSOCKET_FRAGMENTATION_NONE,
                      &frame, &frame_len),
                    MHD_WEBSOCKET_STATUS_OK);
  frame[0] = (char) 0x81;
  ck_assert_int_eq (ex_send_frame (&c, frame, frame_len, 0), 0);
  MHD_websocket_free (c.ws, frame);
  expect_close (&c, &r, MHD_WEBSOCKET_CLOSEREASON_MALFORMED_UTF8);
  disconnect_client (&c);
  stop_server ();
}
END_TEST

/* Full duplex: two threads send while a third decodes the echoes on
   the same client stream. */
#define PER_SENDER 200

struct sender
{
  struct ex_conn *c;
  char tag;
  int failures;
};

static void *
sender_main (void *cls)
{
  struct sender *s = cls;
  char text[32];
  int i;

  for (i = 0; i < PER_SENDER; i++)
  {
    int n = snprintf (text, sizeof (text), "%c%d", s->tag, i);
    if (0 != ex_send_text (s->c, text, (size_t) n))
      s->failures++;
  }
  return NULL;
}

START_TEST (test_full_duplex)
{
  struct ex_conn c;
  struct reader r = { .have = 0 };
  struct sender a = { NULL, 'a', 0 };
  struct sender b = { NULL, 'b', 0 };
  pthread_t ta;
  pthread_t tb;
  int next[2] = { 0, 0 };
  int i;

  start_server ();
  connect_client (&c);
  a.c = &c;
  b.c = &c;
  ck_assert_int_eq (pthread_create (&ta, NULL, &sender_main, &a), 0);
  ck_assert_int_eq (pthread_create (&tb, NULL, &sender_main, &b), 0);
  /* Each sender's messages come back whole and in its order. */
  for (i = 0; i < 2 * PER_SENDER; i++)
  {
    struct msg m;
    int idx;

    read_msg (&c, &r, &m);
    ck_assert_int_eq (m.status, MHD_WEBSOCKET_STATUS_TEXT_FRAME);
    ck_assert_msg (('a' == m.data[0]) || ('b' == m.data[0]), "got %s", m.data);
    idx = m.data[0] - 'a';
    ck_assert_int_eq (atoi (m.data + 1), next[idx]);
    next[idx]++;
    MHD_websocket_free (c.ws, m.data);
  }
  pthread_join (ta, NULL);
  pthread_join (tb, NULL);
  ck_assert_int_eq (a.failures + b.failures, 0);
  ck_assert_int_eq (ex_send_close (&c, MHD_WEBSOCKET_CLOSEREASON_REGULAR, NULL),
                    0);
  expect_close (&c, &r, MHD_WEBSOCKET_CLOSEREASON_REGULAR);
  disconnect_client (&c);
  stop_server ();
}
END_TEST

START_TEST (test_write_fragments)
{
  struct MHD_WebSocketStream *client;
  struct MHD_WebSocketStream *server;
  char wire[256];
  size_t wire_len = 0;
  static const char *const parts[] = { "first,", "second,", "third" };
  char *out = NULL;
  size_t out_len = 0;
  FILE *f;
  int i;

  ck_assert_int_eq (
    MHD_websocket_stream_init2 (&client, MHD_WEBSOCKET_FLAG_CLIENT, 0, &malloc,
                                &realloc, &free, NULL, &ex_rng),
    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_int_eq (
    MHD_websocket_stream_init (&server, MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS, 0),
    MHD_WEBSOCKET_STATUS_OK);
  /* Three binary fragments with a ping between the first two. */
  for (i = 0; i < 3; i++)
  {
    char *frame;
    size_t frame_len;

    ck_assert_int_eq (MHD_websocket_encode_binary (
                        client, parts[i], strlen (parts[i]),
                        (0 == i)   ? MHD_WEBSOCKET_FRAGMENTATION_FIRST
                        : (2 == i) ? MHD_WEBSOCKET_FRAGMENTATION_LAST
                                   : MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING,
                        &frame, &frame_len),
                      MHD_WEBSOCKET_STATUS_OK);
    memcpy (wire + wire_len, frame, frame_len);
    wire_len += frame_len;
    MHD_websocket_free (client, frame);
    if (0 == i)
    {
      ck_assert_int_eq (
        MHD_websocket_encode_ping (client, "p", 1, &frame, &frame_len),
        MHD_WEBSOCKET_STATUS_OK);
      memcpy (wire + wire_len, frame, frame_len);
      wire_len += frame_len;
      MHD_websocket_free (client, frame);
    }
  }
  f = open_memstream (&out, &out_len);
  ck_assert_ptr_nonnull (f);
  /* Fed in two pieces, split inside the second fragment. */
  ck_assert_int_eq (ex_write_fragments (server, wire, 20, f), 0);
  ck_assert_int_eq (ex_write_fragments (server, wire + 20, wire_len - 20, f),
                    1);
  fclose (f);
  ck_assert_uint_eq (out_len, strlen ("first,second,third"));
  ck_assert_mem_eq (out, "first,second,third", out_len);
  free (out);
  MHD_websocket_stream_free (client);
  MHD_websocket_stream_free (server);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("doc examples");
  TCase *tc = tcase_create ("examples");
  SRunner *sr;
  int failed;

  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_refuses_plain_request);
  tcase_add_test (tc, test_echo_ping_close);
  tcase_add_test (tc, test_fragmented_send);
  tcase_add_test (tc, test_bad_utf8_gets_1007);
  tcase_add_test (tc, test_full_duplex);
  tcase_add_test (tc, test_write_fragments);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (0 == failed) ? EXIT_SUCCESS : EXIT_FAILURE;
}
