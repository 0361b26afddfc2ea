/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file upgrade.c
 * @brief The libmicrohttpd glue of the loop layer: answering the opening
 *        handshake, and handing the upgraded socket to a loop.
 *
 * permessage-deflate is negotiated once, in the access handler, and the
 * answer sent to the client travels with the upgrade to the stream, so
 * that the stream compresses exactly as the client was told.
 *
 * What libmicrohttpd leaves unsaid, and this file relies on:
 * - the socket of the upgrade handler may be non-blocking (it is with
 *   an epoll or thread-per-connection daemon); the loop sets O_NONBLOCK
 *   itself;
 * - extra_in holds bytes that libmicrohttpd read past the request: the
 *   client's first frames, which must be decoded before anything read
 *   from the socket;
 * - the socket is closed only through MHD_upgrade_action (CLOSE), never
 *   with close(): with TLS it is one end of libmicrohttpd's socket pair,
 *   and the daemon frees the connection only after that call;
 * - the daemon's per-connection memory pool (MHD_OPTION_CONNECTION_
 *   MEMORY_LIMIT) holds the request and, with TLS, the relay buffers of
 *   the upgraded connection, so a TLS daemon needs a pool large enough
 *   to leave room for them after the request.
 */

#include "loop.h"

#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <microhttpd.h>

/* What travels from the access handler to the upgrade handler. */
struct upgrade_ctx
{
  struct MHD_WebSocketServer *server;
  void *user;
  /* The permessage-deflate answer sent, or "" for none. */
  char deflate[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
};


/* A short plain-text answer, with one optional extra header. */
static int
answer_text (struct MHD_Connection *connection, unsigned int status,
             const char *text, const char *header, const char *value)
{
  struct MHD_Response *response;
  int ret;

  response = MHD_create_response_from_buffer (strlen (text), (void *) text,
                                              MHD_RESPMEM_PERSISTENT);
  if (NULL == response)
    return MHD_NO;
  (void) MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                  "text/plain; charset=utf-8");
  if (NULL != header)
    (void) MHD_add_response_header (response, header, value);
  ret = (int) MHD_queue_response (connection, status, response);
  MHD_destroy_response (response);
  return ret;
}


/* MHD_get_connection_values_n() callback: counts header values that
   hold a CR. */
static enum MHD_Result
count_cr (void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
          const char *value, size_t value_size)
{
  unsigned int *with_cr = cls;

  (void) kind;
  (void) key;
  (void) key_size;
  if ((NULL != value) && (NULL != memchr (value, '\r', value_size)))
    (*with_cr)++;
  return MHD_YES;
}


/**
 * libmicrohttpd's upgrade handler: makes the stream (compressing as
 * agreed) and gives the socket to a loop.
 */
static void
on_upgraded (void *cls, struct MHD_Connection *connection, void *req_cls,
             const char *extra_in, size_t extra_in_size, MHD_socket sock,
             struct MHD_UpgradeResponseHandle *urh)
{
  struct upgrade_ctx *ctx = cls;
  struct MHD_WebSocketServer *server = ctx->server;
  const struct ws_server_settings *set = ws_server_settings (server);
  struct MHD_WebSocketStream *ws = NULL;
  void *user = ctx->user;
  int tls_fd = -1;
  int on = 1;

  (void) req_cls;
  /* Frames are written whole (all that is queued, in one writev), so
     Nagle's algorithm only adds delay: a frame written while the
     previous one is unacknowledged would wait for the peer's delayed
     ACK.  With TLS the socket is one end of libmicrohttpd's relay; the
     client's TCP socket may also have been left corked by the HTTP
     response. */
  (void) setsockopt (sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof (on));
  {
    const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);

    if ((NULL != ci) && (ci->connect_fd != sock))
    {
      tls_fd = (int) ci->connect_fd;
#ifdef TCP_CORK
      int off = 0;

      (void) setsockopt (ci->connect_fd, IPPROTO_TCP, TCP_CORK, &off,
                         sizeof (off));
#endif
      (void) setsockopt (ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &on,
                         sizeof (on));
    }
  }
#ifdef SO_NOSIGPIPE
  (void) setsockopt (sock, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof (on));
#endif
  if (MHD_WEBSOCKET_STATUS_OK
        == MHD_websocket_stream_init (
          &ws,
          MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS
            | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
          (size_t) set->max_payload)
      && ('\0' != ctx->deflate[0])
      && (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_enable_deflate (ws, ctx->deflate, -1, 0, 0)))
  {
    /* The client was told it may compress: without the memory to
       inflate, it cannot be served. */
    MHD_websocket_stream_free (ws);
    ws = NULL;
  }
  free (ctx);
  if (NULL == ws)
  {
    ws_server_drop_user (server, user, MHD_WEBSOCKET_END_ERROR);
    ws_release_upgraded (urh, tls_fd);
    return;
  }
  /* Closes urh itself on failure. */
  (void) ws_server_adopt (server, (int) sock, tls_fd, urh, extra_in,
                          extra_in_size, ws, user, NULL);
}


/* The handshake; @a user is dropped by the caller unless *taken. */
static int
answer_upgrade (struct MHD_WebSocketServer *server,
                struct MHD_Connection *connection, const char *method,
                const char *version, void *user, int *taken)
{
  char accept[29];
  struct upgrade_ctx *ctx;
  struct MHD_Response *response;
  const struct ws_server_settings *set;
  int ret;

  set = ws_server_settings (server);
  if (0 != strcmp (method, MHD_HTTP_METHOD_GET))
    return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                        "A WebSocket handshake must use GET.\n", NULL, NULL);
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_check_http_version (version))
    return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                        "A WebSocket handshake needs HTTP/1.1 or later.\n",
                        NULL, NULL);
  /* libmicrohttpd 1.0 answers 400 itself to a request without Host (RFC
     9112 3.2; RFC 6455 4.2.1 requires it of a handshake) and to a header
     value holding a lone CR (RFC 9110 5.5); 0.9.75 passes both on, the
     CR inside the value.  Refusing them here answers the same on both. */
  if (NULL
      == MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_HOST))
    return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                        "A WebSocket handshake needs a Host header.\n", NULL,
                        NULL);
  {
    unsigned int with_cr = 0;

    (void) MHD_get_connection_values_n (connection, MHD_HEADER_KIND, &count_cr,
                                        &with_cr);
    if (0 != with_cr)
      return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                          "A header value holds a CR.\n", NULL, NULL);
  }
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_connection_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION)))
    return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                        "The Connection header must contain 'Upgrade'.\n", NULL,
                        NULL);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_upgrade_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE)))
    return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                        "The Upgrade header must contain 'websocket'.\n", NULL,
                        NULL);
  /* RFC 6455 4.2.2: an unsupported version is answered with 426 and the
     version we speak. */
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_version_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, "Sec-WebSocket-Version")))
    return answer_text (connection, MHD_HTTP_UPGRADE_REQUIRED,
                        "Only WebSocket version 13 is supported.\n",
                        "Sec-WebSocket-Version", "13");
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                     "Sec-WebSocket-Key"),
        accept))
    return answer_text (connection, MHD_HTTP_BAD_REQUEST,
                        "Sec-WebSocket-Key is missing or malformed.\n", NULL,
                        NULL);

  ctx = malloc (sizeof (*ctx));
  if (NULL == ctx)
    return MHD_NO;
  ctx->server = server;
  ctx->user = user;
  ctx->deflate[0] = '\0';
  if (set->deflate
      && (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_deflate_negotiate (
            MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                         "Sec-WebSocket-Extensions"),
            set->deflate_flags, 0, 0, ctx->deflate, sizeof (ctx->deflate))))
    ctx->deflate[0] = '\0';
  response = MHD_create_response_for_upgrade (&on_upgraded, ctx);
  if (NULL == response)
  {
    free (ctx);
    return MHD_NO;
  }
  /* libmicrohttpd adds "Connection: Upgrade" itself.  No subprotocol
     is negotiated. */
  if ((MHD_YES
       != MHD_add_response_header (response, MHD_HTTP_HEADER_UPGRADE,
                                   "websocket"))
      || (MHD_YES
          != MHD_add_response_header (response, "Sec-WebSocket-Accept", accept))
      || (('\0' != ctx->deflate[0])
          && (MHD_YES
              != MHD_add_response_header (response, "Sec-WebSocket-Extensions",
                                          ctx->deflate))))
  {
    MHD_destroy_response (response);
    free (ctx);
    return MHD_NO;
  }
  ret = (int) MHD_queue_response (connection, MHD_HTTP_SWITCHING_PROTOCOLS,
                                  response);
  MHD_destroy_response (response);
  /* When the response could not be queued, the upgrade never comes. */
  if (MHD_YES != ret)
    free (ctx);
  else
    *taken = 1;
  return ret;
}


_MHD_EXTERN int
MHD_websocket_server_upgrade (struct MHD_WebSocketServer *server,
                              struct MHD_Connection *connection,
                              const char *method, const char *version,
                              void *user)
{
  int taken = 0;
  int ret;

  if (NULL == server)
    return MHD_NO;
  if ((NULL == connection) || (NULL == method))
    ret = MHD_NO;
  else
    ret = answer_upgrade (server, connection, method, version, user, &taken);
  /* Each closure comes back once: a refused handshake returns it now. */
  if (! taken)
    ws_server_drop_user (server, user, MHD_WEBSOCKET_END_ERROR);
  return ret;
}
