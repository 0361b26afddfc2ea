/*
  chatbus.h -- the chat example's link to Redis (chatserver --redis).

  Several chatserver processes share one chat through Redis: every chat
  event is PUBLISHed on one channel that every process subscribes to, and
  the online list is a sorted set that every process keeps fresh for its
  own members (scores are expiry times, so a dead process's members
  expire).  All Redis traffic runs in one event loop of the server
  (the library's loop layer, MHD_websocket_server_*), with hiredis's asynchronous API driven by
  that loop's fd watches and a timer: other loops only post requests to
  it, and no loop ever waits for Redis.

  Every request that carries a token gets exactly one answer through the
  hooks, in the bus's loop, also when Redis is unreachable and when the
  bus stops; the caller may keep a reference on whatever the token names
  until then.
*/

#ifndef CHATBUS_H
#define CHATBUS_H

#include <stddef.h>

struct ChatBus;
struct MHD_WebSocketLoop;

/**
 * What the bus tells the chat server.  Every hook runs in the bus's
 * loop; a hook may call chat_bus_broadcast().
 */
struct ChatBusHooks
{
  void *cls;

  /**
   * A chat event (a JSON object, as published) to send to every local
   * member.  Called once per event and process: the server encodes it
   * once for all of its members.
   */
  void (*deliver) (void *cls, const char *json, size_t len);

  /**
   * The outcome of chat_bus_publish(): @a ok is 1 when Redis took the
   * message and reported it sent to every chat process alive; otherwise
   * @a why says what went wrong.
   */
  void (*published) (void *cls, void *token, unsigned long seq, int ok,
                     const char *why);

  /**
   * The answer to chat_bus_join(): the cluster-wide online count and up
   * to @a n names (@a ok 1), or @a ok 0 when Redis is unreachable (then
   * @a online and @a names are meaningless).
   */
  void (*joined) (void *cls, void *token, int ok, unsigned long online,
                  const char *const *names, size_t n);

  /**
   * A member left the cluster (as its own server reported, or because
   * its entry expired after its server stopped refreshing it).
   * Called on one process only; the hook announces it to everyone.
   */
  void (*left) (void *cls, const char *name, unsigned long online);

  /**
   * The whole online list, sent after the link to Redis came back (what
   * happened meanwhile was not seen here).
   */
  void (*roster) (void *cls, unsigned long online, const char *const *names,
                  size_t n);

  /**
   * The link to the other servers went down (@a up 0) or came back.
   */
  void (*link) (void *cls, int up);
};

/**
 * Starts the bus in @a loop: it connects to Redis at @a host:@a port
 * and keeps reconnecting, with backoff, whenever the link breaks.  The
 * other functions may be called from any thread.
 *
 * @param server_id this process's name in the cluster, unique
 * @return the bus, or NULL if memory is short or the loop has ended
 */
struct ChatBus *chat_bus_start (struct MHD_WebSocketLoop *loop,
                                const char *host, unsigned int port,
                                const char *server_id,
                                const struct ChatBusHooks *hooks);

/**
 * Publishes a chat message; hooks->published answers it.
 */
void chat_bus_publish (struct ChatBus *bus, void *token, unsigned long seq,
                       const char *json, size_t len);

/**
 * Publishes an event nobody waits for (joins, leaves).  When Redis is
 * unreachable it is delivered to the local members only.
 */
void chat_bus_broadcast (struct ChatBus *bus, const char *json, size_t len);

/**
 * Adds a local member to the online list; hooks->joined answers.
 *
 * @param id unique among this process's members while it is online
 */
void chat_bus_join (struct ChatBus *bus, void *token, unsigned long id,
                    const char *name);

/**
 * Takes a local member off the online list; hooks->left announces it
 * (or nothing, if Redis is unreachable: its entry then expires).
 */
void chat_bus_leave (struct ChatBus *bus, unsigned long id);

/**
 * Takes this process and its members off the cluster (their leaves are
 * announced), answers every request still open as failed and closes the
 * links; later requests fail at once.  Blocks until done, at most about
 * a second and a half.  Not from the bus's loop.
 */
void chat_bus_shutdown (struct ChatBus *bus);

/**
 * Frees the bus once its loop has ended.
 */
void chat_bus_free (struct ChatBus *bus);

#endif
