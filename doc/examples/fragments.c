/*
  fragments.c -- fragmentation both ways: sending one text message as
  several frames, and receiving a message fragment by fragment with
  MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS.
*/
#include "ex.h"

/* Sends @a text in frames of @a piece bytes.  A piece may end inside a
   UTF-8 character: utf8_step carries the validator's state from one
   fragment to the next. */
int
ex_send_text_fragmented (struct ex_conn *c, const char *text, size_t len,
                         size_t piece)
{
  int utf8_step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  size_t off = 0;
  int ret = -1;

  if ((len <= piece) || (0 == piece))
    return ex_send_text (c, text, len);
  /* Another thread's data frames must not come between our fragments
     (control frames may), so the lock is held for the whole message. */
  pthread_mutex_lock (&c->send_lock);
  while (! c->close_sent && (off < len))
  {
    size_t n = (len - off > piece) ? piece : len - off;
    int fragmentation = (0 == off) ? MHD_WEBSOCKET_FRAGMENTATION_FIRST
                        : (off + n == len)
                          ? MHD_WEBSOCKET_FRAGMENTATION_LAST
                          : MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING;
    char *frame;
    size_t frame_len;
    int sent;

    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_encode_text (c->ws, text + off, n, fragmentation,
                                      &frame, &frame_len, &utf8_step))
      break; /* invalid UTF-8, or the last piece ends inside a character */
    sent = ex_send_all (c->fd, frame, frame_len);
    MHD_websocket_free (c->ws, frame);
    if (0 != sent)
      break;
    off += n;
  }
  if (off == len)
    ret = 0;
  pthread_mutex_unlock (&c->send_lock);
  return ret;
}

/* Writes each data message to @a out as its fragments arrive, so that a
   large message never has to fit in memory; @a ws was created with
   MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS.  Returns the number of messages
   completed, or -1 on an error. */
int
ex_write_fragments (struct MHD_WebSocketStream *ws, const char *buf, size_t len,
                    FILE *out)
{
  size_t off = 0;
  int messages = 0;

  while (off < len)
  {
    size_t used;
    char *data;
    size_t data_len;
    enum MHD_WEBSOCKET_STATUS status;

    status =
      MHD_websocket_decode (ws, buf + off, len - off, &used, &data, &data_len);
    off += used;
    if (status < 0)
    {
      MHD_websocket_free (ws, data);
      return -1;
    }
    switch (status)
    {
    case MHD_WEBSOCKET_STATUS_TEXT_FRAME: /* a message in one frame */
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
    case MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT:
    case MHD_WEBSOCKET_STATUS_BINARY_LAST_FRAGMENT:
      messages++;
      /* fall through */
    case MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT:
    case MHD_WEBSOCKET_STATUS_BINARY_FIRST_FRAGMENT:
    case MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT:
    case MHD_WEBSOCKET_STATUS_BINARY_NEXT_FRAGMENT:
      if ((0 != data_len) && (1 != fwrite (data, data_len, 1, out)))
      {
        MHD_websocket_free (ws, data);
        return -1;
      }
      break;
    default:
      break; /* OK, or a control frame between fragments */
    }
    MHD_websocket_free (ws, data);
  }
  return messages;
}
