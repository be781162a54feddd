//! Evidence the machine reads off a label photo (issue 18): the codes printed on the
//! label, the serial numbers they carry, and what those say about each device of the
//! export. Pure functions on values: no store, no HTTP, no clock. The evidence worker
//! has each photo read in a child process ([`reading`]: decoded within its limits, its
//! codes read with [`read_codes`], previews made), then calls [`serials_in`] and
//! [`label_findings`] and records the result.

mod codes;
mod findings;
pub mod reading;
mod serials;
pub mod worker;

pub use codes::{CodeFormat, READ_MAX_SIDE, ReadCode, read_codes};
pub use findings::{LabelFindings, label_findings};
pub use serials::serials_in;
