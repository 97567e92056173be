//! Shoal tuning kit: rate-discovering sweeps with repetitions, curves, a frontier, an HTML
//! report and a recommendation that says how sure it is; and a host check.

pub mod analysis;
pub mod charts;
pub mod driver;
pub mod host;
pub mod html;
pub mod knobs;
pub mod live;
pub mod noise;
pub mod report;
pub mod search;
pub mod step;
pub mod svg;
pub mod sweep;
