//! The time-series sink: follows the archive from a persisted cursor and writes readings
//! as InfluxDB line protocol to InfluxDB 1.x (`/write`), 2.x/3.x (`/api/v2/write`) or
//! VictoriaMetrics, as a follower of hj212-follow's runtime (which retries its failed writes).
//! It owns its metrics; it never judges validity (it writes what the archive marks accepted). An outage delays points, never loses them: the
//! cursor only moves past records whose points the server accepted (or that were parked
//! in the dead-letter file after a 4xx).

mod follower;
pub mod metrics;
mod points;
mod writer;

pub use follower::{InfluxFollower, Settings};
pub use points::{MEASUREMENT, SITE_MEASUREMENT, append_points, site_points};
pub use writer::{Api, Endpoint, WriteError};
