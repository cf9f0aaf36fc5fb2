import type { ChannelOptions } from "@grpc/grpc-js";

/** Largest message a link accepts in either direction. */
export const MAX_LINK_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Keepalive on both ends: a ping every 10 s that must be answered within 10 s, so a
 * dead peer is noticed within about 20 s (the requirement is 30 s), also while idle.
 */
export const KEEPALIVE_OPTIONS: ChannelOptions = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
};

export const LINK_SERVER_OPTIONS: ChannelOptions = {
  ...KEEPALIVE_OPTIONS,
  "grpc.max_receive_message_length": MAX_LINK_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_LINK_MESSAGE_BYTES,
  "grpc.max_concurrent_streams": 32,
};

export const LINK_CLIENT_OPTIONS: ChannelOptions = {
  ...KEEPALIVE_OPTIONS,
  "grpc.max_receive_message_length": MAX_LINK_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_LINK_MESSAGE_BYTES,
  // The uplink runs its own jittered backoff; keep grpc-js's from stacking on top.
  "grpc.initial_reconnect_backoff_ms": 1_000,
  "grpc.max_reconnect_backoff_ms": 5_000,
  "grpc.enable_retries": 0,
};
