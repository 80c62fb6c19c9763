//! Integration tests of pyrpc-server, driven by a raw-frame peer over
//! `tokio::io::duplex` or real sockets. One binary, one module per feature.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod peer;

mod calls;
mod direct;
mod handshake;
mod hooks;
mod limits;
mod nonblocking;
#[cfg(feature = "redis")]
mod redis_store;
mod robustness;
mod shutdown;
mod stats;
mod streams;
