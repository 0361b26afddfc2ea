/*
  client.c -- a command-line WebSocket client built on libmicrohttpd_ws
  in client mode (no libmicrohttpd needed: it speaks HTTP itself).

  Usage: client [-e] ws://HOST[:PORT][/PATH]
         client -h

  HOST is a name, an IPv4 literal or a bracketed IPv6 literal; PORT
  defaults to 80.  TLS (wss://) is not supported.

  Interactive mode (default): every line read from stdin is sent as a
  text message (without its "\n" or "\r\n"; a last line without a newline
  is sent too; a line that is not valid UTF-8 is reported and skipped).
  Every message received is printed to stdout, one per line:
    text    the text itself (a text containing newlines spans lines)
    binary  "[binary N bytes] HEX", HEX being the first 64 bytes in
            lowercase hex, followed by "..." when the message is longer
  Pings are answered with pongs.  At the end of stdin the client sends a
  close frame with code 1000 and waits, up to CLOSE_TIMEOUT_MS, for the
  server's close.

  Echo mode (-e, what the Autobahn testsuite expects of a client): stdin
  is not read; every text or binary message is sent back with the same
  type and payload, and nothing is printed to stdout.

  In both modes a close frame from the server is answered with a close
  frame carrying the same code (an empty one for an empty close), and the
  close code and reason are printed to stderr.  A frame that breaks RFC
  6455 fails the connection: the close frame that the library builds for
  the error (1002, 1007 or 1009) is sent and the connection closed.  Close
  codes from 5000 up, which RFC 6455 leaves undefined, are refused the
  same way (1002), as npm ws does.

  Exit status: 0 when the closing handshake completed (whatever the code),
  1 when the connection failed (protocol error, connection lost, no answer
  to our close), 2 for a usage error, 3 when the connection or the opening
  handshake failed.
*/

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <microhttpd_ws.h>

/* Bounds on what a server can make us hold or wait for. */
#define MAX_MESSAGE (64 * 1024 * 1024)
#define MAX_RESPONSE_HEADER (16 * 1024)
#define CONNECT_TIMEOUT_MS 10000
#define HANDSHAKE_TIMEOUT_MS 5000
/* How long we wait for the server's close after sending ours. */
#define CLOSE_TIMEOUT_MS 3000
/* How long we wait for the server to drop the TCP connection once the
   closing handshake is done (RFC 6455 7.1.1: the server closes first). */
#define LINGER_MS 2000
/* Stop reading from the server while this much is waiting to be sent, so
   a server that does not read cannot make us buffer without end. */
#define SEND_HIGH_WATER (4 * 1024 * 1024)
#define BINARY_SHOWN 64

#define EXIT_CLEAN 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_NO_CONNECTION 3

enum state
{
  /* Messages flow both ways. */
  ST_OPEN,
  /* We sent a close frame and wait for the server's. */
  ST_CLOSE_SENT,
  /* Both close frames went; we wait for the server to end TCP. */
  ST_CLOSED,
  /* We failed the connection; our close frame goes out, then we leave. */
  ST_FAILED
};

/* Bytes waiting to be written to the socket. */
struct outq
{
  char *buf;
  size_t len;
  size_t off;
  size_t cap;
};

struct client
{
  int fd;
  int echo;
  struct MHD_WebSocketStream *ws;
  struct outq out;
  enum state state;
  int exit_status;
  int shut_wr;
  /* Monotonic milliseconds at which the current wait ends, 0 for none. */
  long long deadline;
  /* stdin: the line being read. */
  char *line;
  size_t line_len;
  size_t line_cap;
  int line_too_long;
  int stdin_eof;
  unsigned long line_no;
};


/* permessage-deflate: offered unless --no-deflate; the server's answer
   when it accepted (empty otherwise). */
static int use_deflate = 1;
static char deflate_offer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
static char deflate_answer[MAX_RESPONSE_HEADER];


static void
usage (FILE *f)
{
  fprintf (f, "Usage: client [-e] [--no-deflate] ws://HOST[:PORT][/PATH]\n"
              "  Sends each line of stdin as a text message and prints every\n"
              "  message received (binary as \"[binary N bytes] HEX\").\n"
              "  -e  echo mode: send every message received back, read no "
              "stdin\n"
              "  --no-deflate  do not offer permessage-deflate compression\n"
              "  -h  this help\n");
}


static long long
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* poll() timeout for an absolute deadline (0 = none). */
static int
timeout_for (long long deadline)
{
  long long left;
  if (0 == deadline)
    return -1;
  left = deadline - now_ms ();
  if (left < 0)
    return 0;
  return (left > INT_MAX) ? INT_MAX : (int) left;
}


/* The library's mask source: RFC 6455 10.3 wants unpredictable masks. */
static size_t
rng_openssl (void *cls, void *buf, size_t buf_len)
{
  (void) cls;
  if (buf_len > INT_MAX)
    buf_len = INT_MAX;
  if (1 != RAND_bytes ((unsigned char *) buf, (int) buf_len))
    return 0;
  return buf_len;
}


static const char *
status_name (enum MHD_WEBSOCKET_STATUS s)
{
  switch (s)
  {
  case MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR:
    return "protocol error";
  case MHD_WEBSOCKET_STATUS_STREAM_BROKEN:
    return "stream broken";
  case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
    return "out of memory";
  case MHD_WEBSOCKET_STATUS_PARAMETER_ERROR:
    return "parameter error";
  case MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED:
    return "message too big";
  case MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR:
    return "invalid UTF-8";
  default:
    return "error";
  }
}


/* ------------------------------------------------------------- URL */

struct url
{
  char host[256];      /* for getaddrinfo: no brackets */
  char authority[300]; /* for the Host header */
  char port[6];
  const char *path; /* points into argv */
  size_t path_len;
};


/* Splits ws://HOST[:PORT][/PATH]; returns 0 or -1 with a message. */
static int
parse_url (const char *s, struct url *u)
{
  const char *p;
  const char *h_end;
  const char *auth_end;
  size_t hl;
  unsigned long port = 80;
  size_t i;

  if (0 == strncasecmp (s, "wss://", 6))
  {
    fprintf (stderr, "client: wss:// (TLS) is not supported\n");
    return -1;
  }
  if (0 != strncasecmp (s, "ws://", 5))
  {
    fprintf (stderr, "client: the URL must start with ws://\n");
    return -1;
  }
  p = s + 5;
  auth_end = p + strcspn (p, "/?#");
  if ('[' == *p)
  {
    /* An IPv6 literal. */
    h_end = memchr (p, ']', (size_t) (auth_end - p));
    if (NULL == h_end)
      goto bad;
    hl = (size_t) (h_end - p - 1);
    if ((0 == hl) || (hl >= sizeof (u->host)))
      goto bad;
    memcpy (u->host, p + 1, hl);
    u->host[hl] = '\0';
    h_end++;
  }
  else
  {
    h_end = p;
    while ((h_end < auth_end) && (':' != *h_end))
      h_end++;
    hl = (size_t) (h_end - p);
    if ((0 == hl) || (hl >= sizeof (u->host)))
      goto bad;
    memcpy (u->host, p, hl);
    u->host[hl] = '\0';
    /* User info and odd characters have no place in a host. */
    for (i = 0; i < hl; i++)
      if ((u->host[i] <= ' ') || (NULL != strchr ("@[]\x7f", u->host[i])))
        goto bad;
  }
  if (h_end < auth_end)
  {
    char *end;
    if ((':' != *h_end) || (h_end + 1 == auth_end))
      goto bad;
    for (p = h_end + 1; p < auth_end; p++)
      if ((*p < '0') || (*p > '9'))
        goto bad;
    port = strtoul (h_end + 1, &end, 10);
    if ((0 == port) || (port > 65535))
      goto bad;
  }
  snprintf (u->port, sizeof (u->port), "%lu", port);
  /* The Host header names the port only when it is not the default. */
  if (80 == port)
    snprintf (u->authority, sizeof (u->authority), "%.*s",
              (int) (h_end - (s + 5)), s + 5);
  else
    snprintf (u->authority, sizeof (u->authority), "%.*s:%lu",
              (int) (h_end - (s + 5)), s + 5, port);
  /* The path and query go into the request line; the fragment does not. */
  u->path = auth_end;
  u->path_len = strcspn (auth_end, "#");
  for (i = 0; i < u->path_len; i++)
    if (((unsigned char) u->path[i] <= ' ') || (0x7f == u->path[i]))
      goto bad;
  return 0;
bad:
  fprintf (stderr, "client: malformed URL: %s\n", s);
  return -1;
}


/* ------------------------------------------------------- connecting */

/* Connects to the first address that answers; returns a non-blocking
   socket or -1. */
static int
connect_to (const struct url *u)
{
  struct addrinfo hints;
  struct addrinfo *res;
  struct addrinfo *ai;
  int rc;
  int fd = -1;

  memset (&hints, 0, sizeof (hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  rc = getaddrinfo (u->host, u->port, &hints, &res);
  if (0 != rc)
  {
    fprintf (stderr, "client: %s: %s\n", u->host, gai_strerror (rc));
    return -1;
  }
  for (ai = res; NULL != ai; ai = ai->ai_next)
  {
    struct pollfd pfd;
    int err = 0;
    socklen_t elen = sizeof (err);

    fd = socket (ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (-1 == fd)
      continue;
    if (0 != fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK))
      goto next;
    if (0 == connect (fd, ai->ai_addr, ai->ai_addrlen))
      break;
    if (EINPROGRESS != errno)
    {
      err = errno;
      goto report;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    pfd.revents = 0;
    do
      rc = poll (&pfd, 1, CONNECT_TIMEOUT_MS);
    while ((-1 == rc) && (EINTR == errno));
    if (0 == rc)
    {
      err = ETIMEDOUT;
      goto report;
    }
    if ((rc < 0) || (0 != getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &elen)))
      err = errno;
    if (0 == err)
      break;
  report:
    fprintf (stderr, "client: connect to %s port %s: %s\n", u->host, u->port,
             strerror (err));
  next:
    close (fd);
    fd = -1;
  }
  freeaddrinfo (res);
  return fd;
}


/* Writes all of @a buf before @a deadline; 0 or -1. */
static int
send_all (int fd, const char *buf, size_t len, long long deadline)
{
  while (len > 0)
  {
    ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
    if (n > 0)
    {
      buf += n;
      len -= (size_t) n;
      continue;
    }
    if ((n < 0) && ((EAGAIN == errno) || (EWOULDBLOCK == errno)))
    {
      struct pollfd pfd = { fd, POLLOUT, 0 };
      int rc = poll (&pfd, 1, timeout_for (deadline));
      if (0 == rc)
        return -1;
      continue;
    }
    if ((n < 0) && (EINTR == errno))
      continue;
    return -1;
  }
  return 0;
}


/* ------------------------------------------------ opening handshake */

/* Compares header names, which are case-insensitive. */
static int
is_header (const char *name, const char *want)
{
  return 0 == strcasecmp (name, want);
}


/* Appends a list header's value to @a acc ("a, b"), as HTTP folds
   repeated list headers into one. */
static void
list_append (char *acc, size_t cap, const char *value)
{
  size_t l = strlen (acc);
  if (l > 0)
    snprintf (acc + l, cap - l, ", %s", value);
  else
    snprintf (acc, cap, "%s", value);
}


/* Checks the response header block @a hdr (NUL-terminated, without the
   final empty line); modifies it.  Returns 0 when it accepts the
   upgrade. */
static int
check_response (char *hdr, const char *expected_accept)
{
  static char upgrade[MAX_RESPONSE_HEADER];
  static char connection[MAX_RESPONSE_HEADER];
  char *line;
  char *next;
  char *sp;
  int accepts = 0;
  int accept_ok = 0;

  upgrade[0] = '\0';
  connection[0] = '\0';
  deflate_answer[0] = '\0';
  /* Status line: HTTP-version SP 3DIGIT SP reason */
  next = strstr (hdr, "\r\n");
  if (NULL != next)
  {
    *next = '\0';
    next += 2;
  }
  line = hdr;
  sp = strchr (line, ' ');
  if (NULL == sp)
  {
    fprintf (stderr, "client: malformed status line: %s\n", line);
    return -1;
  }
  *sp = '\0';
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_check_http_version (line))
  {
    fprintf (stderr, "client: the server answered with %s, not HTTP/1.1\n",
             line);
    return -1;
  }
  if ((0 != strncmp (sp + 1, "101", 3)) || (('\0' != sp[4]) && (' ' != sp[4])))
  {
    fprintf (stderr, "client: the server refused the upgrade: %s\n", sp + 1);
    return -1;
  }
  while ((NULL != next) && ('\0' != *next))
  {
    char *colon;
    char *value;
    char *end;

    line = next;
    next = strstr (line, "\r\n");
    if (NULL != next)
    {
      *next = '\0';
      next += 2;
    }
    /* obs-fold (RFC 7230 3.2.4) may be refused; we do. */
    colon = strchr (line, ':');
    if ((NULL == colon) || (colon == line)
        || (strcspn (line, " \t") < (size_t) (colon - line)))
    {
      fprintf (stderr, "client: malformed header line: %s\n", line);
      return -1;
    }
    *colon = '\0';
    value = colon + 1;
    while ((' ' == *value) || ('\t' == *value))
      value++;
    end = value + strlen (value);
    while ((end > value) && ((' ' == end[-1]) || ('\t' == end[-1])))
      *--end = '\0';
    if (is_header (line, "Upgrade"))
      list_append (upgrade, sizeof (upgrade), value);
    else if (is_header (line, "Connection"))
      list_append (connection, sizeof (connection), value);
    else if (is_header (line, "Sec-WebSocket-Accept"))
    {
      accepts++;
      accept_ok = (0 == strcmp (value, expected_accept));
    }
    else if (use_deflate && is_header (line, "Sec-WebSocket-Extensions"))
      list_append (deflate_answer, sizeof (deflate_answer), value);
    else if (is_header (line, "Sec-WebSocket-Extensions")
             || is_header (line, "Sec-WebSocket-Protocol"))
    {
      /* RFC 6455 4.1: we asked for none, so the server may name none. */
      fprintf (stderr,
               "client: the server chose %s '%s', which we did "
               "not offer\n",
               line, value);
      return -1;
    }
  }
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_upgrade_header (upgrade[0] ? upgrade : NULL))
  {
    fprintf (stderr, "client: no 'Upgrade: websocket' in the response\n");
    return -1;
  }
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_connection_header (connection[0] ? connection
                                                              : NULL))
  {
    fprintf (stderr, "client: no 'Connection: Upgrade' in the response\n");
    return -1;
  }
  /* Only what was offered may be chosen (RFC 6455 4.1, RFC 7692 7). */
  if (('\0' != deflate_answer[0])
      && (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_deflate_check_answer (deflate_offer,
                                                 deflate_answer)))
  {
    fprintf (stderr,
             "client: the server chose extensions '%s', which we did not "
             "offer\n",
             deflate_answer);
    return -1;
  }
  if ((1 != accepts) || ! accept_ok)
  {
    fprintf (stderr, "client: %s Sec-WebSocket-Accept (expected %s)\n",
             (0 == accepts)  ? "no"
             : (accepts > 1) ? "repeated"
                             : "wrong",
             expected_accept);
    return -1;
  }
  return 0;
}


/* Sends the upgrade request and checks the answer.  Bytes that followed
   the response header are copied to @a extra (at most
   MAX_RESPONSE_HEADER) and counted in @a extra_len.  Returns 0 or -1. */
static int
handshake (int fd, const struct url *u, char *extra, size_t *extra_len)
{
  unsigned char raw[16];
  char key[32];
  char accept[32];
  char req[2048];
  static char resp[MAX_RESPONSE_HEADER + 1];
  size_t have = 0;
  long long deadline = now_ms () + HANDSHAKE_TIMEOUT_MS;
  int n;
  size_t i;
  char *end = NULL;

  if (1 != RAND_bytes (raw, sizeof (raw)))
  {
    fprintf (stderr, "client: no random bytes for the key\n");
    return -1;
  }
  /* 16 bytes give 24 base64 characters and a NUL. */
  EVP_EncodeBlock ((unsigned char *) key, raw, sizeof (raw));
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (key, accept))
  {
    fprintf (stderr, "client: cannot compute Sec-WebSocket-Accept\n");
    return -1;
  }
  n = snprintf (req, sizeof (req),
                "GET %.*s%s HTTP/1.1\r\n"
                "Host: %s\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "%s%s%s"
                "\r\n",
                (int) u->path_len, u->path, (0 == u->path_len) ? "/" : "",
                u->authority, key,
                use_deflate ? "Sec-WebSocket-Extensions: " : "",
                use_deflate ? deflate_offer : "", use_deflate ? "\r\n" : "");
  if ((n < 0) || ((size_t) n >= sizeof (req)))
  {
    fprintf (stderr, "client: the URL is too long\n");
    return -1;
  }
  if (0 != send_all (fd, req, (size_t) n, deadline))
  {
    fprintf (stderr, "client: cannot send the upgrade request: %s\n",
             strerror (errno));
    return -1;
  }
  /* Read until the empty line, within the size and time bounds. */
  while (NULL == end)
  {
    struct pollfd pfd = { fd, POLLIN, 0 };
    ssize_t r;
    int rc;

    if (have == MAX_RESPONSE_HEADER)
    {
      fprintf (stderr, "client: response header larger than %d bytes\n",
               MAX_RESPONSE_HEADER);
      return -1;
    }
    rc = poll (&pfd, 1, timeout_for (deadline));
    if ((rc < 0) && (EINTR == errno))
      continue;
    if (rc <= 0)
    {
      fprintf (stderr, "client: no complete response within %d ms\n",
               HANDSHAKE_TIMEOUT_MS);
      return -1;
    }
    r = recv (fd, resp + have, MAX_RESPONSE_HEADER - have, 0);
    if ((r < 0) && ((EINTR == errno) || (EAGAIN == errno)))
      continue;
    if (r <= 0)
    {
      fprintf (stderr, "client: connection closed during the handshake\n");
      return -1;
    }
    /* Look for the empty line in the new bytes (and the 3 before). */
    for (i = (have > 3) ? have - 3 : 0; i + 4 <= have + (size_t) r; i++)
      if (0 == memcmp (resp + i, "\r\n\r\n", 4))
      {
        end = resp + i;
        break;
      }
    have += (size_t) r;
  }
  if (NULL != memchr (resp, '\0', (size_t) (end - resp)))
  {
    fprintf (stderr, "client: NUL byte in the response header\n");
    return -1;
  }
  *extra_len = have - (size_t) (end + 4 - resp);
  memcpy (extra, end + 4, *extra_len);
  end[2] = '\0';
  if (0 != check_response (resp, accept))
    return -1;
  return 0;
}


/* ----------------------------------------------------------- sending */

static int
outq_add (struct outq *q, const char *data, size_t len)
{
  if (q->off == q->len)
    q->off = q->len = 0;
  if (q->len + len > q->cap)
  {
    size_t cap = q->cap ? q->cap : 65536;
    char *b;
    /* Move what is left to the front before growing. */
    if (q->off > 0)
    {
      memmove (q->buf, q->buf + q->off, q->len - q->off);
      q->len -= q->off;
      q->off = 0;
    }
    while (cap < q->len + len)
      cap *= 2;
    if (cap > q->cap)
    {
      b = realloc (q->buf, cap);
      if (NULL == b)
        return -1;
      q->buf = b;
      q->cap = cap;
    }
  }
  memcpy (q->buf + q->len, data, len);
  q->len += len;
  return 0;
}


/* Queues a frame the library built and frees it. */
static void
queue_frame (struct client *c, char *frame, size_t len)
{
  if (0 != outq_add (&c->out, frame, len))
  {
    fprintf (stderr, "client: out of memory\n");
    exit (EXIT_FAILED);
  }
  MHD_websocket_free (c->ws, frame);
}


/* Writes what the socket takes now; -1 when the connection is gone. */
static int
flush_some (struct client *c)
{
  while (c->out.off < c->out.len)
  {
    ssize_t n = send (c->fd, c->out.buf + c->out.off, c->out.len - c->out.off,
                      MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
    {
      c->out.off += (size_t) n;
      continue;
    }
    if ((n < 0) && (EINTR == errno))
      continue;
    if ((n < 0) && ((EAGAIN == errno) || (EWOULDBLOCK == errno)))
      return 0;
    return -1;
  }
  return 0;
}


static size_t
pending (const struct client *c)
{
  return c->out.len - c->out.off;
}


/* Fails the connection with @a code (after a protocol error of ours to
   report, or a policy refusal). */
static void
fail_with_code (struct client *c, unsigned short code)
{
  char *frame;
  size_t len;
  /* After our close frame, nothing more may be sent. */
  if ((ST_OPEN == c->state)
      && (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_close (c->ws, code, NULL, 0, &frame, &len)))
    queue_frame (c, frame, len);
  c->state = ST_FAILED;
  c->exit_status = EXIT_FAILED;
  c->deadline = now_ms () + LINGER_MS;
}


/* Sends our close frame (end of stdin). */
static void
start_close (struct client *c)
{
  char *frame;
  size_t len;
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_close (c->ws, MHD_WEBSOCKET_CLOSEREASON_REGULAR,
                                     NULL, 0, &frame, &len))
  {
    fprintf (stderr, "client: cannot encode a close frame\n");
    exit (EXIT_FAILED);
  }
  queue_frame (c, frame, len);
  c->state = ST_CLOSE_SENT;
  c->deadline = now_ms () + CLOSE_TIMEOUT_MS;
}


/* ----------------------------------------------------------- receiving */

static void
print_binary (const char *p, size_t len)
{
  size_t i;
  size_t shown = (len > BINARY_SHOWN) ? BINARY_SHOWN : len;
  printf ("[binary %zu bytes]%s", len, (0 == len) ? "" : " ");
  for (i = 0; i < shown; i++)
    printf ("%02x", (unsigned char) p[i]);
  printf ("%s\n", (len > shown) ? "..." : "");
}


/* Handles the server's close frame. */
static void
got_close (struct client *c, const char *payload, size_t len)
{
  unsigned short code = 0;
  const char *reason = NULL;
  size_t reason_len = 0;
  char *frame;
  size_t flen;
  enum MHD_WEBSOCKET_STATUS rc;

  /* The decoder has checked the payload (length, code, UTF-8). */
  MHD_websocket_split_close_reason (payload, len, &code, &reason, &reason_len);
  if (0 == code)
    fprintf (stderr, "client: server closed the connection (no code)\n");
  else
    fprintf (stderr, "client: server closed the connection: %u%s%.*s\n",
             (unsigned) code, (0 != reason_len) ? " " : "", (int) reason_len,
             (NULL != reason) ? reason : "");
  if (code >= 5000)
  {
    fprintf (stderr, "client: close code %u is undefined; failing with %d\n",
             (unsigned) code, MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR);
    fail_with_code (c, MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR);
    return;
  }
  if (ST_OPEN == c->state)
  {
    /* Echo the code, as RFC 6455 5.5.1 suggests. */
    rc = MHD_websocket_encode_close (c->ws, code, NULL, 0, &frame, &flen);
    if (MHD_WEBSOCKET_STATUS_OK != rc)
    {
      fprintf (stderr, "client: cannot encode a close frame\n");
      exit (EXIT_FAILED);
    }
    queue_frame (c, frame, flen);
  }
  c->state = ST_CLOSED;
  c->exit_status = EXIT_CLEAN;
  c->deadline = now_ms () + LINGER_MS;
}


/* Feeds received bytes to the decoder and acts on what it returns. */
static void
got_bytes (struct client *c, const char *buf, size_t len)
{
  while ((len > 0) && ((ST_OPEN == c->state) || (ST_CLOSE_SENT == c->state)))
  {
    size_t used = 0;
    char *payload = NULL;
    size_t plen = 0;
    char *frame;
    size_t flen;
    enum MHD_WEBSOCKET_STATUS rc;

    rc = MHD_websocket_decode (c->ws, buf, len, &used, &payload, &plen);
    buf += used;
    len -= used;
    switch (rc)
    {
    case MHD_WEBSOCKET_STATUS_OK:
      break;
    case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
      if (! c->echo)
      {
        if (MHD_WEBSOCKET_STATUS_TEXT_FRAME == rc)
        {
          /* An empty payload comes as NULL. */
          if (0 != plen)
            fwrite (payload, 1, plen, stdout);
          putchar ('\n');
        }
        else
          print_binary (payload, plen);
        fflush (stdout);
      }
      else if (ST_OPEN == c->state)
      {
        /* Nothing may follow our close frame, not even an echo. */
        if (MHD_WEBSOCKET_STATUS_TEXT_FRAME == rc)
          rc = MHD_websocket_encode_text (c->ws, payload, plen,
                                          MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                          &frame, &flen, NULL);
        else
          rc = MHD_websocket_encode_binary (c->ws, payload, plen,
                                            MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                            &frame, &flen);
        if (MHD_WEBSOCKET_STATUS_OK != rc)
        {
          fprintf (stderr, "client: cannot encode the echo: %s\n",
                   status_name (rc));
          fail_with_code (c, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION);
          break;
        }
        queue_frame (c, frame, flen);
      }
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
      if (ST_OPEN == c->state)
      {
        rc = MHD_websocket_encode_pong (c->ws, payload, plen, &frame, &flen);
        if (MHD_WEBSOCKET_STATUS_OK == rc)
          queue_frame (c, frame, flen);
      }
      break;
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      /* We send no pings; an unsolicited pong needs no answer. */
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      got_close (c, payload, plen);
      break;
    default:
      if ((int) rc < 0)
      {
        /* The decoder built the close frame for the error (masked). */
        fprintf (stderr, "client: %s from the server; failing the connection\n",
                 status_name (rc));
        if ((NULL != payload) && (ST_OPEN == c->state))
        {
          queue_frame (c, payload, plen);
          payload = NULL;
          c->state = ST_FAILED;
          c->exit_status = EXIT_FAILED;
          c->deadline = now_ms () + LINGER_MS;
        }
        else
          fail_with_code (
            c,
            (MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR == rc)
              ? MHD_WEBSOCKET_CLOSEREASON_MALFORMED_UTF8
            : (MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED == rc)
              ? MHD_WEBSOCKET_CLOSEREASON_MAXIMUM_ALLOWED_PAYLOAD_SIZE_EXCEEDED
              : MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR);
      }
      else
        fprintf (stderr, "client: unexpected decoder status %d\n", (int) rc);
      break;
    }
    if (NULL != payload)
      MHD_websocket_free (c->ws, payload);
    if ((0 == used) && (MHD_WEBSOCKET_STATUS_OK == rc))
      break;
  }
}


/* ---------------------------------------------------------- stdin */

static void
send_line (struct client *c, const char *line, size_t len)
{
  char *frame;
  size_t flen;
  enum MHD_WEBSOCKET_STATUS rc;

  c->line_no++;
  if ((len > 0) && ('\r' == line[len - 1]))
    len--;
  rc = MHD_websocket_encode_text (
    c->ws, line, len, MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &flen, NULL);
  if (MHD_WEBSOCKET_STATUS_OK != rc)
  {
    fprintf (stderr, "client: line %lu not sent: %s\n", c->line_no,
             status_name (rc));
    return;
  }
  queue_frame (c, frame, flen);
}


/* Reads what stdin has; sends complete lines; at EOF starts closing. */
static void
read_stdin (struct client *c)
{
  ssize_t n;
  size_t start = 0;
  size_t i;

  if (c->line_cap - c->line_len < 4096)
  {
    size_t cap = c->line_cap ? c->line_cap * 2 : 65536;
    char *b = realloc (c->line, cap);
    if (NULL == b)
    {
      fprintf (stderr, "client: out of memory\n");
      exit (EXIT_FAILED);
    }
    c->line = b;
    c->line_cap = cap;
  }
  n = read (STDIN_FILENO, c->line + c->line_len, c->line_cap - c->line_len);
  if ((n < 0) && ((EINTR == errno) || (EAGAIN == errno)))
    return;
  if (n <= 0)
  {
    if ((c->line_len > 0) && ! c->line_too_long)
      send_line (c, c->line, c->line_len);
    c->line_len = 0;
    c->stdin_eof = 1;
    start_close (c);
    return;
  }
  i = c->line_len;
  c->line_len += (size_t) n;
  for (; i < c->line_len; i++)
  {
    if ('\n' != c->line[i])
      continue;
    if (c->line_too_long)
    {
      c->line_no++;
      c->line_too_long = 0;
    }
    else
      send_line (c, c->line + start, i - start);
    start = i + 1;
  }
  memmove (c->line, c->line + start, c->line_len - start);
  c->line_len -= start;
  if (c->line_len > MAX_MESSAGE)
  {
    if (! c->line_too_long)
      fprintf (stderr, "client: line %lu longer than %d bytes; skipped\n",
               c->line_no + 1, MAX_MESSAGE);
    c->line_too_long = 1;
    c->line_len = 0;
  }
}


/* ----------------------------------------------------------- main loop */

static int
run (struct client *c)
{
  static char buf[65536];

  for (;;)
  {
    struct pollfd pfd[2];
    nfds_t nfds = 1;
    int rc;
    int sock_read;

    if (((ST_CLOSED == c->state) || (ST_FAILED == c->state))
        && (0 == pending (c)))
    {
      /* Our last frame is out: tell the server we are done writing and
         wait (bounded) for it to end the connection. */
      if (! c->shut_wr)
        shutdown (c->fd, SHUT_WR);
      c->shut_wr = 1;
    }
    sock_read = (ST_OPEN != c->state) || (pending (c) < SEND_HIGH_WATER);
    pfd[0].fd = c->fd;
    pfd[0].events =
      (short) ((sock_read ? POLLIN : 0) | ((pending (c) > 0) ? POLLOUT : 0));
    pfd[0].revents = 0;
    if (! c->echo && ! c->stdin_eof && (ST_OPEN == c->state)
        && (pending (c) < SEND_HIGH_WATER))
    {
      pfd[1].fd = STDIN_FILENO;
      pfd[1].events = POLLIN;
      pfd[1].revents = 0;
      nfds = 2;
    }
    rc = poll (pfd, nfds, timeout_for (c->deadline));
    if ((rc < 0) && (EINTR == errno))
      continue;
    if (rc < 0)
    {
      perror ("client: poll");
      return EXIT_FAILED;
    }
    if ((0 != c->deadline) && (now_ms () >= c->deadline))
    {
      if (ST_CLOSE_SENT == c->state)
      {
        fprintf (stderr,
                 "client: no close frame from the server within "
                 "%d ms\n",
                 CLOSE_TIMEOUT_MS);
        return EXIT_FAILED;
      }
      if (ST_OPEN != c->state)
        return c->exit_status;
    }
    if (0 != (pfd[0].revents & POLLOUT))
    {
      if (0 != flush_some (c))
      {
        if (ST_CLOSED == c->state)
          return c->exit_status;
        fprintf (stderr, "client: connection lost while sending: %s\n",
                 strerror (errno));
        return EXIT_FAILED;
      }
    }
    if (0 != (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
    {
      ssize_t n = recv (c->fd, buf, sizeof (buf), 0);
      if ((n < 0) && ((EINTR == errno) || (EAGAIN == errno)))
        continue;
      if (n <= 0)
      {
        if ((ST_CLOSED == c->state) || (ST_FAILED == c->state))
          return c->exit_status;
        fprintf (stderr,
                 "client: connection closed without a close frame "
                 "(1006)%s%s\n",
                 (n < 0) ? ": " : "", (n < 0) ? strerror (errno) : "");
        return EXIT_FAILED;
      }
      got_bytes (c, buf, (size_t) n);
    }
    if ((nfds > 1) && (0 != (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))))
      read_stdin (c);
  }
}


int
main (int argc, char **argv)
{
  struct client c;
  struct url u;
  static char extra[MAX_RESPONSE_HEADER];
  size_t extra_len = 0;
  const char *url = NULL;
  int i;
  int status;

  memset (&c, 0, sizeof (c));
  c.fd = -1;
  for (i = 1; i < argc; i++)
  {
    if (0 == strcmp (argv[i], "-h"))
    {
      usage (stdout);
      return EXIT_CLEAN;
    }
    if (0 == strcmp (argv[i], "-e"))
      c.echo = 1;
    else if (0 == strcmp (argv[i], "--no-deflate"))
      use_deflate = 0;
    else if (('-' == argv[i][0]) || (NULL != url))
    {
      usage (stderr);
      return EXIT_USAGE;
    }
    else
      url = argv[i];
  }
  if (NULL == url)
  {
    usage (stderr);
    return EXIT_USAGE;
  }
  if (0 != parse_url (url, &u))
    return EXIT_USAGE;
  /* What browsers offer: any window for us, the server's choice. */
  if (use_deflate
      && (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_deflate_offer (0, 0, 0, deflate_offer,
                                          sizeof (deflate_offer))))
    return EXIT_FAILED;

  c.fd = connect_to (&u);
  if (-1 == c.fd)
    return EXIT_NO_CONNECTION;
  if (0 != handshake (c.fd, &u, extra, &extra_len))
  {
    close (c.fd);
    return EXIT_NO_CONNECTION;
  }
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init2 (
        &c.ws,
        MHD_WEBSOCKET_FLAG_CLIENT
          | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
        MAX_MESSAGE, &malloc, &realloc, &free, NULL, &rng_openssl))
  {
    fprintf (stderr, "client: cannot create the WebSocket stream\n");
    close (c.fd);
    return EXIT_FAILED;
  }
  if (('\0' != deflate_answer[0])
      && (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_enable_deflate (c.ws, deflate_answer, -1, 0,
                                                  0)))
  {
    fprintf (stderr, "client: cannot enable compression\n");
    close (c.fd);
    MHD_websocket_stream_free (c.ws);
    return EXIT_FAILED;
  }
  c.state = ST_OPEN;
  c.exit_status = EXIT_FAILED;
  /* Frames may have come with the 101 response. */
  got_bytes (&c, extra, extra_len);
  status = run (&c);
  close (c.fd);
  MHD_websocket_stream_free (c.ws);
  free (c.out.buf);
  free (c.line);
  return status;
}
