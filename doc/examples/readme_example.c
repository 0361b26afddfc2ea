#include <stdio.h>
#include <microhttpd_ws.h>

int
main (void)
{
  /* "Hello" in a masked frame, as a browser sends it (RFC 6455 5.7). */
  static const char in[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  struct MHD_WebSocketStream *ws;
  char *data, *frame;
  size_t used, len, frame_len;

  MHD_websocket_stream_init (&ws, MHD_WEBSOCKET_FLAG_SERVER, 1 << 20);
  if (MHD_WEBSOCKET_STATUS_TEXT_FRAME
      == MHD_websocket_decode (ws, in, sizeof (in) - 1, &used, &data, &len))
  {
    printf ("received \"%s\" (%zu bytes)\n", data, len); /* NUL-terminated */
    MHD_websocket_encode_text (ws, data, len, MHD_WEBSOCKET_FRAGMENTATION_NONE,
                               &frame, &frame_len, NULL);
    printf ("echo frame: %zu bytes\n", frame_len); /* send() it */
    MHD_websocket_free (ws, frame);
    MHD_websocket_free (ws, data);
  }
  MHD_websocket_stream_free (ws);
  return 0;
}
