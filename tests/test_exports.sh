#!/bin/sh
# The shared library exports exactly the 20 MHD_websocket_* functions of
# the published API, the 4 of permessage-deflate (issue 13), the 27 of the
# session layer and the 26 of the loop layer (issue 19), and nothing else
# (internal symbols are hidden).
: "${top_builddir:=.}"
: "${NM:=nm}"
lib="$top_builddir/.libs/libmicrohttpd_ws.so"
if [ ! -f "$lib" ]; then
  echo "FAIL: $lib was not built" >&2
  exit 1
fi
expected="MHD_websocket_broadcast_create
MHD_websocket_broadcast_release
MHD_websocket_check_connection_header
MHD_websocket_check_http_version
MHD_websocket_check_upgrade_header
MHD_websocket_check_version_header
MHD_websocket_create_accept_header
MHD_websocket_decode
MHD_websocket_deflate_check_answer
MHD_websocket_deflate_negotiate
MHD_websocket_deflate_offer
MHD_websocket_encode_binary
MHD_websocket_encode_close
MHD_websocket_encode_ping
MHD_websocket_encode_pong
MHD_websocket_encode_text
MHD_websocket_free
MHD_websocket_loop_current
MHD_websocket_loop_post
MHD_websocket_malloc
MHD_websocket_realloc
MHD_websocket_server_adopt
MHD_websocket_server_broadcast
MHD_websocket_server_close
MHD_websocket_server_connection_id
MHD_websocket_server_create
MHD_websocket_server_free
MHD_websocket_server_loop
MHD_websocket_server_loop_count
MHD_websocket_server_send
MHD_websocket_server_set
MHD_websocket_server_set_group
MHD_websocket_server_set_loop_callback
MHD_websocket_server_set_open_callback
MHD_websocket_server_start
MHD_websocket_server_stop
MHD_websocket_server_upgrade
MHD_websocket_session_close
MHD_websocket_session_config_create
MHD_websocket_session_config_free
MHD_websocket_session_config_set
MHD_websocket_session_config_set_callbacks
MHD_websocket_session_create
MHD_websocket_session_ended
MHD_websocket_session_eof
MHD_websocket_session_free
MHD_websocket_session_get_cls
MHD_websocket_session_next_deadline
MHD_websocket_session_pending
MHD_websocket_session_queued
MHD_websocket_session_receive
MHD_websocket_session_send_binary
MHD_websocket_session_send_broadcast
MHD_websocket_session_send_ping
MHD_websocket_session_send_text
MHD_websocket_session_sent
MHD_websocket_session_set_cls
MHD_websocket_session_stream
MHD_websocket_session_tick
MHD_websocket_session_want_read
MHD_websocket_session_want_write
MHD_websocket_session_write_done
MHD_websocket_split_close_reason
MHD_websocket_stream_enable_deflate
MHD_websocket_stream_free
MHD_websocket_stream_init
MHD_websocket_stream_init2
MHD_websocket_stream_invalidate
MHD_websocket_stream_is_valid
MHD_websocket_timer_arm
MHD_websocket_timer_create
MHD_websocket_timer_disarm
MHD_websocket_timer_free
MHD_websocket_watch_create
MHD_websocket_watch_events
MHD_websocket_watch_free
MHD_websocket_watch_set"
actual=$($NM -D --defined-only "$lib" | awk '$2 ~ /^[TtDdBbRrWwVvi]$/ { print $3 }' \
         | sed 's/@.*//' | LC_ALL=C sort)
if [ "$actual" != "$expected" ]; then
  echo "FAIL: exported symbols differ from the published API:" >&2
  printf '%s\n' "$expected" > exports.expected
  printf '%s\n' "$actual" > exports.actual
  diff exports.expected exports.actual >&2
  rm -f exports.expected exports.actual
  exit 1
fi
echo "PASS: exactly the 77 MHD_websocket_* functions are exported"
