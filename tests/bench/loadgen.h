/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file loadgen.h
 * @brief What the load generators load.c and chatload.c share: clock,
 *        generator, non-blocking socket and epoll plumbing, and the
 *        client side of the opening handshake.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <microhttpd_ws.h>

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* lg_recv results besides 1 (bytes read) and 0 (nothing more for now). */
#define LG_RECV_ERROR (-1)  /* errno says why */
#define LG_RECV_CLOSED (-2) /* the peer closed the connection */
#define LG_RECV_FULL (-3)   /* no room left in the buffer */

uint64_t lg_now_ns (void);

uint64_t lg_next_rand (uint64_t *s);

size_t lg_mask_rng (void *cls, void *buf, size_t len);

int lg_cmp_u64 (const void *a, const void *b);

/** The VmRSS of process @a pid in KiB (/proc), or -1. */
long long lg_proc_rss_kib (long pid);

int lg_raise_fd_limit (unsigned n_conns, unsigned long long *limit);

int lg_stream_init (struct MHD_WebSocketStream **ws, uint64_t *rng);

void lg_loopback (struct sockaddr_in *sa, unsigned long port);

int lg_socket (const char *prog);

int lg_watch (int ep, int fd, void *ptr, int *want_out, int want);

int lg_send (int fd, const char *buf, size_t len, size_t *off);

int lg_recv (int fd, char *buf, size_t *len, size_t size);

const char *lg_connected (int fd, uint64_t *rng, const char *target,
                          char *accept, char *request, size_t request_size,
                          size_t *request_len);

long lg_handshake (char *in, size_t in_len, size_t max, const char *accept,
                   const char **why);

#endif
