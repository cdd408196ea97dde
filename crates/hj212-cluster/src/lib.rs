//! `[cluster]`: hj212d nodes that publish every archived record to one replicated NATS
//! JetStream stream, each frame stored once whichever nodes received it (HJ 212 loggers
//! reporting to several centres, 多中心上报, send the same frame to each). Each node keeps its
//! own hash-chained archive as before; the stream is the fleet's merged record.

mod claims;
mod connect;
mod corrections;
mod delivery;
mod lease;
pub mod message;
pub mod metrics;
mod one_node;
mod publisher;
mod reader;

pub use claims::{CLAIM_HOLD, RecoveryClaims};
pub use connect::{ConnectError, Settings};
pub use delivery::Delivery;
pub use one_node::OneNode;
pub use publisher::Publisher;
pub use reader::{StreamFeeds, newest_seq};
