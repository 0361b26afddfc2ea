/*
  cxx_server.cpp -- libmicrohttpd_ws used the way a C++ framework on
  libmicrohttpd (etr/libhttpserver and the like) uses it, as a test
  program: tests/framework/test_cxx_server.py drives it with Python's
  websockets.

  What a framework does, and so what this program does:
  - the access handler checks the handshake and answers 101;
  - the upgrade handler starts one std::thread per connection (the
    session), which creates the stream with
    MHD_websocket_stream_init (&ws, SERVER | NO_FRAGMENTS, 0) and runs
    the receive loop: recv() on MHD's non-blocking socket, poll() on
    EAGAIN, MHD_websocket_decode() until the buffer is consumed, every
    status handled (data to the application, ping -> pong, unsolicited
    pong ignored, close -> answer and end, error -> the close frame that
    fits the error, then end);
  - the application sends whole messages with
    MHD_websocket_encode_text/encode_binary from ANOTHER thread (here one
    sender thread per connection that echoes what arrived), serialised
    with the receive side by a std::mutex that also covers the
    MHD_websocket_free() of each frame;
  - MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE) exactly once per
    connection, after the last thread that writes to the socket is gone.

  Usage: cxx_server [PORT]     (0 or nothing: any free port)
  The first line on stdout is "Serving on http://127.0.0.1:PORT/".
  SIGINT or SIGTERM shuts down: no new connections, every open session
  sends a 1001 close and waits (bounded) for the answer, the daemon
  stops.  The last line on stderr counts upgrades, closes and anomalies;
  the exit status is 0 only when every upgraded socket was given back
  exactly once and nothing unexpected happened.
*/
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace
{

/* Set once by main() when a signal asks for shutdown. */
std::atomic<bool> stopping{ false };

/* What the exit status and the last stderr line are made of. */
struct Counters
{
  std::atomic<unsigned long> upgrades{ 0 };
  std::atomic<unsigned long> urh_closes{ 0 };
  std::atomic<unsigned long> messages{ 0 };
  std::atomic<unsigned long> echoes{ 0 };
  std::atomic<unsigned long> pings{ 0 };
  std::atomic<unsigned long> pongs{ 0 };
  std::atomic<unsigned long> peer_closes{ 0 };
  std::atomic<unsigned long> error_closes{ 0 };
  std::atomic<unsigned long> going_away{ 0 };
  std::atomic<unsigned long> anomalies{ 0 };
};
Counters counters;

void
anomaly (const char *what)
{
  counters.anomalies++;
  std::fprintf (stderr, "cxx_server: anomaly: %s\n", what);
}

/* How long a write may make no progress before the peer counts as gone,
   and how long a 1001 close waits for its answer at shutdown. */
constexpr int write_stall_ms = 10000;
constexpr auto shutdown_grace = std::chrono::seconds (2);
/* The receive loop looks at the shutdown flag this often. */
constexpr int poll_ms = 100;

struct Message
{
  bool text;
  std::string data;
};

/* One upgraded connection: the framework's side of it. */
class WsConnection
{
public:
  WsConnection (MHD_socket sock, MHD_UpgradeResponseHandle *urh,
                MHD_WebSocketStream *ws, std::string extra)
      : sock_ (sock), urh_ (urh), ws_ (ws), extra_ (std::move (extra))
  {
  }

  WsConnection (const WsConnection &) = delete;
  WsConnection &operator= (const WsConnection &) = delete;

  /* The session: receive until the connection ends, then give
     everything back.  Runs in the session's own thread. */
  void run ();

  /* Thread-safe: whole messages, from any thread.  False once the
     connection is closing or broken. */
  bool send_text (std::string_view text)
  {
    return send_message (true, text);
  }
  bool send_binary (std::string_view data)
  {
    return send_message (false, data);
  }

private:
  bool send_message (bool text, std::string_view data);
  bool send_frame (char *frame, size_t frame_len, bool is_close);
  bool send_close (unsigned short code, std::string_view reason);
  bool write_all (const char *p, size_t len);
  void free_buffer (char *buf);
  bool feed (const char *data, size_t len, class EchoSender &app);
  bool dispatch (int status, char *payload, size_t payload_len,
                 class EchoSender &app);

  MHD_socket sock_;
  MHD_UpgradeResponseHandle *urh_;
  MHD_WebSocketStream *ws_;
  std::string extra_;
  /* The stream: every decode, encode and MHD_websocket_free.  Not held
     while waiting for the socket, so a sender stuck on a full socket
     does not stop the receive side from decoding (and answering pings
     once the socket drains). */
  std::mutex codec_mx_;
  /* The socket's write side: whole frames, one at a time, and nothing
     after the close frame. */
  std::mutex write_mx_;
  bool close_sent_ = false;
  std::atomic<bool> broken_{ false };
};

/* The application: an echo that answers from its own thread, one per
   connection, in the order the messages came. */
class EchoSender
{
public:
  explicit EchoSender (WsConnection &conn)
      : conn_ (conn), thread_ ([this] { loop (); })
  {
  }

  ~EchoSender ()
  {
    {
      std::lock_guard<std::mutex> lk (mx_);
      done_ = true;
    }
    cv_.notify_one ();
    thread_.join ();
  }

  void post (Message m)
  {
    {
      std::lock_guard<std::mutex> lk (mx_);
      queue_.push_back (std::move (m));
    }
    cv_.notify_one ();
  }

private:
  void loop ()
  {
    for (;;)
    {
      Message m;
      {
        std::unique_lock<std::mutex> lk (mx_);
        cv_.wait (lk, [this] { return done_ || ! queue_.empty (); });
        if (queue_.empty ())
          return; /* done_ */
        m = std::move (queue_.front ());
        queue_.pop_front ();
      }
      bool ok = m.text ? conn_.send_text (m.data) : conn_.send_binary (m.data);
      if (ok)
        counters.echoes++;
    }
  }

  WsConnection &conn_;
  std::mutex mx_;
  std::condition_variable cv_;
  std::deque<Message> queue_;
  bool done_ = false;
  std::thread thread_; /* last: started once the rest is built */
};

void
WsConnection::free_buffer (char *buf)
{
  if (nullptr == buf)
    return;
  std::lock_guard<std::mutex> lk (codec_mx_);
  MHD_websocket_free (ws_, buf);
}

/* Waits for the socket to become readable or writable; false on a
   timeout or an error. */
bool
wait_socket (MHD_socket sock, short events, int timeout_ms)
{
  struct pollfd p;
  p.fd = sock;
  p.events = events;
  p.revents = 0;
  int r;
  do
    r = poll (&p, 1, timeout_ms);
  while (r < 0 && EINTR == errno);
  return r > 0;
}

bool
WsConnection::write_all (const char *p, size_t len)
{
  while (len > 0)
  {
    ssize_t n = send (sock_, p, len, MSG_NOSIGNAL);
    if (n > 0)
    {
      p += n;
      len -= static_cast<size_t> (n);
      continue;
    }
    if (n < 0 && EINTR == errno)
      continue;
    /* MHD gave us a non-blocking socket: a full send buffer is EAGAIN,
       not an error. */
    if (n < 0 && (EAGAIN == errno || EWOULDBLOCK == errno)
        && wait_socket (sock_, POLLOUT, write_stall_ms))
      continue;
    broken_ = true;
    return false;
  }
  return true;
}

/* Sends a frame the library encoded and frees it; the frame is freed
   also when it cannot be sent. */
bool
WsConnection::send_frame (char *frame, size_t frame_len, bool is_close)
{
  bool ok = false;
  {
    std::lock_guard<std::mutex> lk (write_mx_);
    if (! close_sent_ && ! broken_)
    {
      ok = write_all (frame, frame_len);
      if (is_close)
        close_sent_ = true;
    }
  }
  free_buffer (frame);
  return ok;
}

bool
WsConnection::send_message (bool text, std::string_view data)
{
  char *frame = nullptr;
  size_t frame_len = 0;
  int status;
  {
    std::lock_guard<std::mutex> lk (codec_mx_);
    if (text)
      status = MHD_websocket_encode_text (ws_, data.data (), data.size (),
                                          MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                          &frame, &frame_len, nullptr);
    else
      status = MHD_websocket_encode_binary (ws_, data.data (), data.size (),
                                            MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                            &frame, &frame_len);
  }
  if (MHD_WEBSOCKET_STATUS_OK != status)
  {
    anomaly ("encoding a message failed");
    return false;
  }
  return send_frame (frame, frame_len, false);
}

bool
WsConnection::send_close (unsigned short code, std::string_view reason)
{
  char *frame = nullptr;
  size_t frame_len = 0;
  int status;
  {
    std::lock_guard<std::mutex> lk (codec_mx_);
    status = MHD_websocket_encode_close (ws_, code, reason.data (),
                                         reason.size (), &frame, &frame_len);
  }
  if (MHD_WEBSOCKET_STATUS_OK != status)
  {
    anomaly ("encoding a close frame failed");
    return false;
  }
  return send_frame (frame, frame_len, true);
}

/* Acts on one result of MHD_websocket_decode; false ends the session.
   Owns @a payload. */
bool
WsConnection::dispatch (int status, char *payload, size_t payload_len,
                        EchoSender &app)
{
  switch (status)
  {
  case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
  case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
  {
    /* The payload may be NULL for an empty message. */
    Message m{ MHD_WEBSOCKET_STATUS_TEXT_FRAME == status,
               std::string (payload ? payload : "", payload_len) };
    free_buffer (payload);
    counters.messages++;
    app.post (std::move (m));
    return true;
  }
  case MHD_WEBSOCKET_STATUS_PING_FRAME:
  {
    char *frame = nullptr;
    size_t frame_len = 0;
    int st;
    counters.pings++;
    {
      std::lock_guard<std::mutex> lk (codec_mx_);
      st = MHD_websocket_encode_pong (ws_, payload, payload_len, &frame,
                                      &frame_len);
      MHD_websocket_free (ws_, payload);
    }
    if (MHD_WEBSOCKET_STATUS_OK != st)
    {
      anomaly ("encoding a pong failed");
      return false;
    }
    /* After our close (at shutdown) a ping needs no answer. */
    (void) send_frame (frame, frame_len, false);
    return ! broken_;
  }
  case MHD_WEBSOCKET_STATUS_PONG_FRAME:
    /* Unsolicited pongs are legal (RFC 6455 5.5.3) and mean nothing. */
    counters.pongs++;
    free_buffer (payload);
    return true;
  case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
  {
    unsigned short code = MHD_WEBSOCKET_CLOSEREASON_NO_REASON;
    int st = MHD_websocket_split_close_reason (payload, payload_len, &code,
                                               nullptr, nullptr);
    free_buffer (payload);
    counters.peer_closes++;
    bool answered;
    {
      std::lock_guard<std::mutex> lk (write_mx_);
      answered = close_sent_;
    }
    /* Answer with the peer's code (RFC 6455 5.5.1), unless this is the
       answer to our own close. */
    if (! answered)
    {
      if (MHD_WEBSOCKET_STATUS_OK != st)
        code = MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR;
      else if (code < 1000) /* no code: none in the answer either */
        code = MHD_WEBSOCKET_CLOSEREASON_NO_REASON;
      (void) send_close (code, "");
    }
    return false;
  }
  case MHD_WEBSOCKET_STATUS_OK:
    anomaly ("dispatch of STATUS_OK");
    free_buffer (payload);
    return false;
  default:
    break;
  }

  /* An error: without MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR
     there is no ready close frame, so pick the code that fits. */
  free_buffer (payload);
  unsigned short code;
  const char *reason;
  switch (status)
  {
  case MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR:
    code = MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR;
    reason = "protocol error";
    break;
  case MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR:
    code = MHD_WEBSOCKET_CLOSEREASON_MALFORMED_UTF8;
    reason = "invalid UTF-8";
    break;
  case MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED:
    code = MHD_WEBSOCKET_CLOSEREASON_MAXIMUM_ALLOWED_PAYLOAD_SIZE_EXCEEDED;
    reason = "message too big";
    break;
  case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
    code = MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION;
    reason = "out of memory";
    break;
  default:
    /* STREAM_BROKEN, PARAMETER_ERROR, or a fragment status that
       NO_FRAGMENTS must never return. */
    anomaly ("unexpected decode status");
    code = MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION;
    reason = "unexpected";
    break;
  }
  counters.error_closes++;
  (void) send_close (code, reason);
  return false;
}

/* The framework's loop: decode until everything received is consumed. */
bool
WsConnection::feed (const char *data, size_t len, EchoSender &app)
{
  size_t off = 0;
  while (off < len)
  {
    size_t used = 0;
    char *payload = nullptr;
    size_t payload_len = 0;
    int status;
    {
      std::lock_guard<std::mutex> lk (codec_mx_);
      status = MHD_websocket_decode (ws_, data + off, len - off, &used,
                                     &payload, &payload_len);
    }
    if (used > len - off)
    {
      anomaly ("decode consumed more than it was given");
      free_buffer (payload);
      return false;
    }
    off += used;
    if (MHD_WEBSOCKET_STATUS_OK == status)
    {
      /* OK means every byte was taken (and kept for later). */
      if (off != len)
      {
        anomaly ("decode returned OK with input left");
        return false;
      }
      free_buffer (payload);
      return true;
    }
    if (! dispatch (status, payload, payload_len, app))
      return false;
  }
  return true;
}

void
WsConnection::run ()
{
  {
    /* The application lives exactly as long as the receive loop: its
       destructor joins its thread, so nothing writes to the socket
       after this block. */
    EchoSender app (*this);
    bool go = feed (extra_.data (), extra_.size (), app);
    std::vector<char> buf (16 * 1024);
    bool going_away = false;
    auto deadline = std::chrono::steady_clock::time_point::max ();
    while (go && ! broken_)
    {
      if (stopping && ! going_away)
      {
        /* Shutdown: say so, then wait (bounded) for the answer. */
        going_away = true;
        counters.going_away++;
        if (! send_close (MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                          "server shutdown"))
          break;
        deadline = std::chrono::steady_clock::now () + shutdown_grace;
      }
      if (std::chrono::steady_clock::now () >= deadline)
        break;
      ssize_t n = recv (sock_, buf.data (), buf.size (), 0);
      if (n > 0)
      {
        go = feed (buf.data (), static_cast<size_t> (n), app);
        continue;
      }
      if (0 == n)
        break; /* the peer closed TCP without a close frame */
      if (EINTR == errno)
        continue;
      if (EAGAIN == errno || EWOULDBLOCK == errno)
      {
        /* Nothing yet: wait, but look at the shutdown flag now and
           then. */
        (void) wait_socket (sock_, POLLIN, poll_ms);
        continue;
      }
      break;
    }
  }
  MHD_websocket_stream_free (ws_);
  ws_ = nullptr;
  /* Gives the socket back; libmicrohttpd closes it.  Exactly once. */
  if (MHD_YES != MHD_upgrade_action (urh_, MHD_UPGRADE_ACTION_CLOSE))
    anomaly ("MHD_upgrade_action (CLOSE) failed");
  counters.urh_closes++;
}

/* The session threads: joined when they end (reaped by the next
   upgrade) and all at shutdown, so no thread outlives the daemon. */
class Sessions
{
public:
  void start (std::unique_ptr<WsConnection> conn)
  {
    std::lock_guard<std::mutex> lk (mx_);
    reap_locked ();
    WsConnection *c = conn.release ();
    threads_.emplace_back ();
    auto it = std::prev (threads_.end ());
    try
    {
      *it = std::thread (
        [this, c, it]
        {
          c->run ();
          delete c;
          std::lock_guard<std::mutex> lk2 (mx_);
          finished_.push_back (it);
          cv_.notify_all ();
        });
    }
    catch (...)
    {
      threads_.erase (it);
      conn.reset (c);
      throw;
    }
  }

  void join_all ()
  {
    std::unique_lock<std::mutex> lk (mx_);
    cv_.wait (lk, [this] { return threads_.size () == finished_.size (); });
    reap_locked ();
  }

private:
  void reap_locked ()
  {
    for (auto it : finished_)
    {
      it->join ();
      threads_.erase (it);
    }
    finished_.clear ();
  }

  std::mutex mx_;
  std::condition_variable cv_;
  std::list<std::thread> threads_;
  std::vector<std::list<std::thread>::iterator> finished_;
};
Sessions sessions;

/* MHD calls this from its own thread and must get control back at once:
   the daemon runs with MHD_USE_INTERNAL_POLLING_THREAD, one thread for
   every HTTP client, so a session run here would stall every other
   client.  MHD_USE_THREAD_PER_CONNECTION would allow blocking here, but
   a framework does not choose the daemon's threading for its users;
   starting a thread per session works under every mode. */
void
upgrade_handler (void *cls, struct MHD_Connection *connection, void *req_cls,
                 const char *extra_in, size_t extra_in_size, MHD_socket sock,
                 struct MHD_UpgradeResponseHandle *urh)
{
  (void) cls;
  (void) connection;
  (void) req_cls;
  counters.upgrades++;
  MHD_WebSocketStream *ws = nullptr;
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init (
        &ws, MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS, 0))
  {
    anomaly ("MHD_websocket_stream_init failed");
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    counters.urh_closes++;
    return;
  }
  /* The receive loop polls on EAGAIN; make sure a blocking socket (other
     threading modes) cannot hide the shutdown flag from it. */
  int fl = fcntl (sock, F_GETFL);
  if (fl >= 0 && 0 == (fl & O_NONBLOCK))
    (void) fcntl (sock, F_SETFL, fl | O_NONBLOCK);
  try
  {
    /* extra_in (bytes read past the handshake) is valid only now. */
    sessions.start (std::make_unique<WsConnection> (
      sock, urh, ws, std::string (extra_in ? extra_in : "", extra_in_size)));
  }
  catch (...)
  {
    /* No exception may cross back into libmicrohttpd. */
    anomaly ("no session thread");
    MHD_websocket_stream_free (ws);
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    counters.urh_closes++;
  }
}

const char *
header (struct MHD_Connection *connection, const char *name)
{
  return MHD_lookup_connection_value (connection, MHD_HEADER_KIND, name);
}

enum MHD_Result
access_handler (void *cls, struct MHD_Connection *connection, const char *url,
                const char *method, const char *version,
                const char *upload_data, size_t *upload_data_size,
                void **req_cls)
{
  (void) cls;
  (void) url;
  (void) upload_data;
  (void) upload_data_size;
  (void) req_cls;
  char accept[29];
  struct MHD_Response *response;
  unsigned int code;
  if (0 == std::strcmp (method, MHD_HTTP_METHOD_GET)
      && MHD_WEBSOCKET_STATUS_OK == MHD_websocket_check_http_version (version)
      && MHD_WEBSOCKET_STATUS_OK
           == MHD_websocket_check_connection_header (
             header (connection, MHD_HTTP_HEADER_CONNECTION))
      && MHD_WEBSOCKET_STATUS_OK
           == MHD_websocket_check_upgrade_header (
             header (connection, MHD_HTTP_HEADER_UPGRADE))
      && MHD_WEBSOCKET_STATUS_OK
           == MHD_websocket_check_version_header (
             header (connection, MHD_HTTP_HEADER_SEC_WEBSOCKET_VERSION))
      && MHD_WEBSOCKET_STATUS_OK
           == MHD_websocket_create_accept_header (
             header (connection, MHD_HTTP_HEADER_SEC_WEBSOCKET_KEY), accept))
  {
    response = MHD_create_response_for_upgrade (&upgrade_handler, nullptr);
    if (nullptr == response)
      return MHD_NO;
    if (MHD_YES
          != MHD_add_response_header (response, MHD_HTTP_HEADER_UPGRADE,
                                      "websocket")
        || MHD_YES
             != MHD_add_response_header (
               response, MHD_HTTP_HEADER_SEC_WEBSOCKET_ACCEPT, accept))
    {
      MHD_destroy_response (response);
      return MHD_NO;
    }
    code = MHD_HTTP_SWITCHING_PROTOCOLS;
  }
  else
  {
    static const char text[] = "WebSocket (version 13) only.\n";
    response = MHD_create_response_from_buffer (
      sizeof (text) - 1, const_cast<char *> (text), MHD_RESPMEM_PERSISTENT);
    if (nullptr == response)
      return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_SEC_WEBSOCKET_VERSION,
                             "13");
    code = MHD_HTTP_BAD_REQUEST;
  }
  enum MHD_Result ret = MHD_queue_response (connection, code, response);
  MHD_destroy_response (response);
  return ret;
}

} // namespace

int
main (int argc, char **argv)
{
  unsigned long port = (argc > 1) ? std::strtoul (argv[1], nullptr, 10) : 0;
  if (argc > 2 || port > 65535)
  {
    std::fprintf (stderr, "usage: %s [PORT]\n", argv[0]);
    return 2;
  }
  /* Every thread (MHD's and ours) inherits this mask; main takes the
     signals with sigwait. */
  sigset_t sigs;
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGTERM);
  sigaddset (&sigs, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &sigs, nullptr);

  struct sockaddr_in addr;
  std::memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons (static_cast<uint16_t> (port));
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  /* MHD_USE_ITC: MHD_quiesce_daemon needs it with an internal thread. */
  struct MHD_Daemon *d = MHD_start_daemon (
    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_ALLOW_UPGRADE
      | MHD_USE_ERROR_LOG,
    static_cast<uint16_t> (port), nullptr, nullptr, &access_handler, nullptr,
    MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
  if (nullptr == d)
  {
    std::fprintf (stderr, "cxx_server: MHD_start_daemon failed\n");
    return 1;
  }
  const union MHD_DaemonInfo *info =
    MHD_get_daemon_info (d, MHD_DAEMON_INFO_BIND_PORT);
  if (nullptr == info || 0 == info->port)
  {
    std::fprintf (stderr, "cxx_server: no port\n");
    MHD_stop_daemon (d);
    return 1;
  }
  std::fprintf (stderr, "cxx_server: libmicrohttpd %s (built against %08x)\n",
                MHD_get_version (), static_cast<unsigned> (MHD_VERSION));
  std::printf ("Serving on http://127.0.0.1:%u/\n",
               static_cast<unsigned> (info->port));
  std::fflush (stdout);

  sigdelset (&sigs, SIGPIPE);
  int sig = 0;
  while (0 != sigwait (&sigs, &sig))
    ;

  /* No new connections, then every session ends (its 1001 close is
     bounded by shutdown_grace), then the daemon: MHD wants upgraded
     sockets given back before MHD_stop_daemon. */
  MHD_socket listen_sock = MHD_quiesce_daemon (d);
  if (MHD_INVALID_SOCKET != listen_sock)
    close (listen_sock);
  stopping = true;
  sessions.join_all ();
  MHD_stop_daemon (d);

  unsigned long up = counters.upgrades, closed = counters.urh_closes;
  std::fprintf (stderr,
                "cxx_server: %lu upgrades, %lu sockets given back, "
                "%lu messages, %lu echoes, %lu pings, %lu pongs, "
                "%lu peer closes, %lu error closes, %lu going away, "
                "%lu anomalies\n",
                up, closed, counters.messages.load (), counters.echoes.load (),
                counters.pings.load (), counters.pongs.load (),
                counters.peer_closes.load (), counters.error_closes.load (),
                counters.going_away.load (), counters.anomalies.load ());
  return (up == closed && 0 == counters.anomalies) ? 0 : 1;
}
