//! The fast tracks: the rules under which the desk answers a request with no agent.

use std::fmt;

/// A rule that lets the desk decide alone. Stored by [`FastTrack::as_str`] (the
/// `automatic_decisions.track` and `fast_track_switches.track` columns, the console's
/// filter, the `track` label of `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FastTrack {
    /// Every device of the export carries a reserved e-mail (set on the device by its
    /// owner), and the request came from that address: the response goes to the reserved
    /// address only, and receiving it there is the proof.
    ReservedEmail,
    /// A registered installer sent the request, with their token, for devices registered
    /// to them, and the label photo shows the exporting device.
    Installer,
}

impl FastTrack {
    pub const ALL: [Self; 2] = [Self::ReservedEmail, Self::Installer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservedEmail => "reserved_email",
            Self::Installer => "installer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|track| track.as_str() == text)
    }

    /// The rule in a few words, for the console, history and the audit log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReservedEmail => {
                "reserved e-mail: the request came from the address set on the device, and the response went there only"
            }
            Self::Installer => {
                "registered installer: the installer's own devices, with the label photo showing the exporting device"
            }
        }
    }

    /// The name of the track for a menu.
    pub fn title(self) -> &'static str {
        match self {
            Self::ReservedEmail => "Reserved e-mail",
            Self::Installer => "Registered installer",
        }
    }
}

impl fmt::Display for FastTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_track_parses_from_its_stored_name() {
        for track in FastTrack::ALL {
            assert_eq!(FastTrack::parse(track.as_str()), Some(track));
        }
        assert_eq!(FastTrack::parse("Reserved_Email"), None);
        assert_eq!(FastTrack::parse(""), None);
    }
}
