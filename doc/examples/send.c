/*
  send.c -- sending from several threads: a lock per connection keeps
  frames whole on the socket.  Encoding needs no lock: the encoders read
  only the stream's mode and allocator, never the decoder's state.
*/
#include "ex.h"

#include <errno.h>
#include <sys/socket.h>

int
ex_conn_init (struct ex_conn *c, MHD_socket fd, struct MHD_WebSocketStream *ws)
{
  c->fd = fd;
  c->ws = ws;
  c->close_sent = 0;
  return (0 == pthread_mutex_init (&c->send_lock, NULL)) ? 0 : -1;
}

void
ex_conn_destroy (struct ex_conn *c)
{
  MHD_websocket_stream_free (c->ws);
  pthread_mutex_destroy (&c->send_lock);
}

int
ex_send_all (MHD_socket fd, const char *buf, size_t len)
{
  while (len > 0)
  {
    ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);

    if ((n < 0) && (EINTR == errno))
      continue;
    if (n <= 0)
      return -1;
    buf += n;
    len -= (size_t) n;
  }
  return 0;
}

/* Sends one encoded frame; nothing goes out after a close frame. */
int
ex_send_frame (struct ex_conn *c, const char *frame, size_t frame_len,
               int is_close)
{
  int ret = -1;

  pthread_mutex_lock (&c->send_lock);
  if (! c->close_sent)
  {
    ret = ex_send_all (c->fd, frame, frame_len);
    if (is_close)
      c->close_sent = 1;
  }
  pthread_mutex_unlock (&c->send_lock);
  return ret;
}

/* Safe from any thread, also while another thread decodes on c->ws. */
int
ex_send_text (struct ex_conn *c, const char *text, size_t len)
{
  char *frame;
  size_t frame_len;
  int ret;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (c->ws, text, len,
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                    &frame_len, NULL))
    return -1;
  ret = ex_send_frame (c, frame, frame_len, 0);
  MHD_websocket_free (c->ws, frame);
  return ret;
}
