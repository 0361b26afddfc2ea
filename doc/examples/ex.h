/*
  ex.h -- declarations shared by the examples of the libmicrohttpd_ws
  manual.  Each C file in doc/examples is one example of the manual;
  together they make a small echo server (echo_server.c) and a client,
  and doc/examples/test_examples.c runs them against each other.
*/
#ifndef EX_H
#define EX_H 1

/* POSIX 2008: MSG_NOSIGNAL, open_memstream, strncasecmp. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

/* One WebSocket connection, either side. */
struct ex_conn
{
  MHD_socket fd;
  struct MHD_WebSocketStream *ws;
  /* Serialises whole frames (or whole fragmented messages) on fd. */
  pthread_mutex_t send_lock;
  /* Under send_lock: a close frame went out, nothing may follow it. */
  int close_sent;
};

/* send.c */
int ex_conn_init (struct ex_conn *c, MHD_socket fd,
                  struct MHD_WebSocketStream *ws);
void ex_conn_destroy (struct ex_conn *c);
int ex_send_all (MHD_socket fd, const char *buf, size_t len);
int ex_send_frame (struct ex_conn *c, const char *frame, size_t frame_len,
                   int is_close);
int ex_send_text (struct ex_conn *c, const char *text, size_t len);

/* close.c */
int ex_send_close (struct ex_conn *c, unsigned short code, const char *reason);
void ex_answer_close (struct ex_conn *c, const char *payload, size_t len);

/* receive_loop.c */
void ex_receive_loop (struct ex_conn *c, const char *extra, size_t extra_len);

/* upgrade.c */
enum MHD_Result ex_access_handler (void *cls, struct MHD_Connection *connection,
                                   const char *url, const char *method,
                                   const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls);
void ex_upgrade_handler (void *cls, struct MHD_Connection *connection,
                         void *req_cls, const char *extra_in,
                         size_t extra_in_size, MHD_socket sock,
                         struct MHD_UpgradeResponseHandle *urh);
unsigned int ex_wait_for_sessions (unsigned int seconds);

/* fragments.c */
int ex_send_text_fragmented (struct ex_conn *c, const char *text, size_t len,
                             size_t piece);
int ex_write_fragments (struct MHD_WebSocketStream *ws, const char *buf,
                        size_t len, FILE *out);

/* client.c */
size_t ex_rng (void *cls, void *buf, size_t buf_len);
int ex_client_connect (struct ex_conn *c, uint16_t port, const char *path);

#endif
