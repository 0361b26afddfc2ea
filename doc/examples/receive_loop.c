/*
  receive_loop.c -- the upgrade handler's receive loop: read bytes, feed
  them to the decoder until it has consumed them all, act on each
  complete frame.
*/
#include "ex.h"

#include <errno.h>
#include <sys/socket.h>

/* Acts on what one decode call returned; 0 ends the connection. */
static int
dispatch (struct ex_conn *c, enum MHD_WEBSOCKET_STATUS status, char *payload,
          size_t payload_len)
{
  char *frame;
  size_t frame_len;
  int ret;

  switch (status)
  {
  case MHD_WEBSOCKET_STATUS_OK:
    return 1; /* all bytes consumed, no frame complete yet */
  case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
    return 0 == ex_send_text (c, payload, payload_len); /* echo */
  case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_encode_binary (c->ws, payload, payload_len,
                                        MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                        &frame, &frame_len))
      return 0;
    break;
  case MHD_WEBSOCKET_STATUS_PING_FRAME:
    /* A pong carries the ping's payload (RFC 6455 5.5.3). */
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_encode_pong (c->ws, payload, payload_len, &frame,
                                      &frame_len))
      return 0;
    break;
  case MHD_WEBSOCKET_STATUS_PONG_FRAME:
    return 1;
  case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
    ex_answer_close (c, payload, payload_len);
    return 0;
  case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
    (void) ex_send_close (c, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION,
                          NULL);
    return 0;
  default:
    /* The peer broke the protocol, sent bad UTF-8 or too much: the
       stream is invalid now.  With GENERATE_CLOSE_FRAMES_ON_ERROR the
       payload is a close frame (1002, 1007 or 1009) that says why. */
    if (NULL != payload)
      (void) ex_send_frame (c, payload, payload_len, 1);
    return 0;
  }
  ret = ex_send_frame (c, frame, frame_len, 0);
  MHD_websocket_free (c->ws, frame);
  return 0 == ret;
}

void
ex_receive_loop (struct ex_conn *c, const char *extra, size_t extra_len)
{
  char buf[4096];
  const char *data = extra; /* what libmicrohttpd read past the request */
  size_t len = extra_len;

  for (;;)
  {
    size_t off = 0;
    ssize_t got;

    /* One call returns at most one frame: call again with the rest. */
    while (off < len)
    {
      size_t used;
      char *payload;
      size_t payload_len;
      enum MHD_WEBSOCKET_STATUS status;
      int go_on;

      status = MHD_websocket_decode (c->ws, data + off, len - off, &used,
                                     &payload, &payload_len);
      off += used;
      go_on = dispatch (c, status, payload, payload_len);
      MHD_websocket_free (c->ws, payload); /* NULL is fine */
      if (! go_on)
        return;
    }
    do
      got = recv (c->fd, buf, sizeof (buf), 0);
    while ((got < 0) && (EINTR == errno));
    if (got <= 0)
      return; /* the peer went away */
    data = buf;
    len = (size_t) got;
  }
}
