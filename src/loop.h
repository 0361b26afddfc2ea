/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file loop.h
 * @brief What the loop (loop.c) and the libmicrohttpd glue (upgrade.c)
 *        share: the server's settings.
 */
#ifndef WS_LOOP_H
#define WS_LOOP_H 1

#include "internal.h"

struct MHD_UpgradeResponseHandle;

/** The server's settings that the glue reads (set before start). */
struct ws_server_settings
{
  /** MHD_WEBSOCKET_SERVER_OPTION_MAX_PAYLOAD. */
  uint64_t max_payload;
  /** MHD_WEBSOCKET_SERVER_OPTION_DEFLATE. */
  int deflate;
  /** MHD_WEBSOCKET_SERVER_OPTION_DEFLATE_FLAGS. */
  int deflate_flags;
};

/** The settings of @a server, for the glue. */
const struct ws_server_settings *
ws_server_settings (const struct MHD_WebSocketServer *server);

/**
 * Hands the closure of a connection that never got a session back to
 * the application (the end event with a NULL session).
 */
void ws_server_drop_user (struct MHD_WebSocketServer *server, void *user,
                          enum MHD_WEBSOCKET_END_REASON reason);

/**
 * MHD_websocket_server_adopt() with the client's TCP socket of a TLS
 * connection (@a tls_fd, -1 for none), which the end of the connection
 * shuts down for reading first (see ws_release_upgraded()).
 */
enum MHD_WEBSOCKET_STATUS
ws_server_adopt (struct MHD_WebSocketServer *server, int sock, int tls_fd,
                 struct MHD_UpgradeResponseHandle *urh, const char *extra_in,
                 size_t extra_in_size, struct MHD_WebSocketStream *ws,
                 void *user, unsigned long long *id);

/** Gives an upgraded socket back to libmicrohttpd, which closes it. */
void ws_release_upgraded (struct MHD_UpgradeResponseHandle *urh, int tls_fd);

#endif
