/*
  close.c -- the closing handshake (RFC 6455 section 7): sending a close
  frame, and answering the peer's.
*/
#include "ex.h"

#include <string.h>

int
ex_send_close (struct ex_conn *c, unsigned short code, const char *reason)
{
  char *frame;
  size_t frame_len;
  int ret;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_close (c->ws, code, reason,
                                     (NULL == reason) ? 0 : strlen (reason),
                                     &frame, &frame_len))
    return -1;
  ret = ex_send_frame (c, frame, frame_len, 1);
  MHD_websocket_free (c->ws, frame);
  return ret;
}

/* The usual answer echoes the peer's code; an empty close frame is
   answered with 1000.  The decoder has already refused codes that may
   not appear on the wire, but passes 5000 and up, which RFC 6455 leaves
   undefined. */
void
ex_answer_close (struct ex_conn *c, const char *payload, size_t len)
{
  unsigned short code;
  unsigned short answer = MHD_WEBSOCKET_CLOSEREASON_REGULAR;

  if (MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_split_close_reason (payload, len, &code, NULL, NULL))
  {
    if (code >= 5000)
      answer = MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR;
    else if (MHD_WEBSOCKET_CLOSEREASON_NO_REASON != code)
      answer = code;
  }
  (void) ex_send_close (c, answer, NULL);
}
