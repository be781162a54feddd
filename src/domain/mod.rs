//! Types that parse at the edge. Each constructor validates once, so the rest of the
//! code never re-checks a raw string: a `DeviceSerial` is a valid serial by construction.

mod canned;
mod device;
mod email;
mod fast_track;
mod label;
mod search;
mod secret;
mod ticket;
mod time;
mod user;

pub use canned::{CannedKind, CannedText, CannedWords};
pub use device::{DeviceModel, DeviceSerial, FieldError, FirmwareVersion, MacAddress};
pub use email::{EmailAddress, EmailError};
pub use fast_track::FastTrack;
pub use label::LabelFinding;
pub use search::{SearchError, SearchText, TicketSearchText};
pub use secret::Secret;
pub use ticket::{
    CountryCode, CustomerRole, PhoneNumber, PlainText, TicketNumber, TicketStatus, WrittenText,
    WrittenTextError,
};
pub use time::{Timestamp, TimestampError};
pub use user::{Role, Roles};
