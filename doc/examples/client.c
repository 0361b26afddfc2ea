/*
  client.c -- client mode: the opening handshake from the client side,
  then a stream that masks what it sends with random keys.
*/
#include "ex.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Masking keys must be unpredictable (RFC 6455 10.3): a CSPRNG. */
size_t
ex_rng (void *cls, void *buf, size_t buf_len)
{
  (void) cls;
  return (1 == RAND_bytes (buf, (int) buf_len)) ? buf_len : 0;
}

/* Reads the response header one byte at a time, so that not a byte of
   what follows it (the first frames) is taken from the socket. */
static int
read_response (int fd, char *buf, size_t size)
{
  size_t n = 0;

  while (n + 1 < size)
  {
    if (1 != recv (fd, buf + n, 1, 0))
      return -1;
    n++;
    buf[n] = '\0';
    if ((n >= 4) && (0 == memcmp (buf + n - 4, "\r\n\r\n", 4)))
      return 0;
  }
  return -1;
}

/* Whether the response is 101 with the Sec-WebSocket-Accept we expect. */
static int
response_ok (const char *response, const char *expect)
{
  static const char name[] = "Sec-WebSocket-Accept:";
  const char *line;

  if (0 != strncmp (response, "HTTP/1.1 101 ", 13))
    return 0;
  for (line = strstr (response, "\r\n"); NULL != line;
       line = strstr (line, "\r\n"))
  {
    line += 2;
    if (0 == strncasecmp (line, name, sizeof (name) - 1))
    {
      const char *value = line + sizeof (name) - 1;
      while (' ' == *value)
        value++;
      return (0 == strncmp (value, expect, 28)) && ('\r' == value[28]);
    }
  }
  return 0;
}

int
ex_client_connect (struct ex_conn *c, uint16_t port, const char *path)
{
  struct sockaddr_in addr;
  unsigned char nonce[16];
  char key[25];
  char expect[29];
  char request[512];
  char response[2048];
  struct MHD_WebSocketStream *ws;
  int fd;

  /* The key is 16 random bytes in base64; the server must answer with
     the value that create_accept_header computes from it. */
  if ((1 != RAND_bytes (nonce, sizeof (nonce)))
      || (24 != EVP_EncodeBlock ((unsigned char *) key, nonce, 16))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_create_accept_header (key, expect)))
    return -1;
  snprintf (request, sizeof (request),
            "GET %s HTTP/1.1\r\n"
            "Host: 127.0.0.1:%u\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n",
            path, (unsigned int) port, key);

  fd = socket (AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons (port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if ((0 != connect (fd, (struct sockaddr *) &addr, sizeof (addr)))
      || (0 != ex_send_all (fd, request, strlen (request)))
      || (0 != read_response (fd, response, sizeof (response)))
      || ! response_ok (response, expect)
      /* A client stream needs the random number generator: only
         stream_init2 can create one. */
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_CLIENT, 0,
                                         &malloc, &realloc, &free, NULL,
                                         &ex_rng)))
  {
    close (fd);
    return -1;
  }
  if (0 != ex_conn_init (c, fd, ws))
  {
    MHD_websocket_stream_free (ws);
    close (fd);
    return -1;
  }
  return 0;
}
