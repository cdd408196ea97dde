/// Protocol generation, from the Flag field's version bits V5..V0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Version {
    /// HJ/T 212-2005 (version bits 0, or no Flag field at all).
    Hj212_2005,
    /// HJ 212-2017 (version bits 1).
    Hj212_2017,
    /// HJ 212-2025 (version bits 2).
    Hj212_2025,
    /// Version bits no standard defines yet.
    Other(u8),
}

impl Version {
    /// The 6-bit version number.
    pub fn bits(self) -> u8 {
        match self {
            Self::Hj212_2005 => 0,
            Self::Hj212_2017 => 1,
            Self::Hj212_2025 => 2,
            Self::Other(bits) => bits,
        }
    }

    fn from_bits(bits: u8) -> Self {
        match bits {
            0 => Self::Hj212_2005,
            1 => Self::Hj212_2017,
            2 => Self::Hj212_2025,
            other => Self::Other(other),
        }
    }

    /// A stable name for logs, metrics and decode output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hj212_2005 => "2005",
            Self::Hj212_2017 => "2017",
            Self::Hj212_2025 => "2025",
            Self::Other(_) => "unknown",
        }
    }
}

/// The Flag field: bits `V5 V4 V3 V2 V1 V0 D A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flag(pub u8);

impl Flag {
    const ACK: u8 = 0b01;
    const SPLIT: u8 = 0b10;

    /// A: the sender wants an answer (9014 for uploads).
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }

    /// D: the packet is one of several and carries PNUM and PNO.
    pub fn split(self) -> bool {
        self.0 & Self::SPLIT != 0
    }

    /// The protocol generation.
    pub fn version(self) -> Version {
        Version::from_bits(self.0 >> 2)
    }

    /// The Flag a reply carries: same version, no ack, not split.
    pub fn for_version(version: Version) -> Self {
        Self(version.bits() << 2)
    }

    /// This flag with the A bit set as given.
    #[must_use]
    pub fn with_ack(self, ack: bool) -> Self {
        if ack { Self(self.0 | Self::ACK) } else { Self(self.0 & !Self::ACK) }
    }

    /// This flag with the D bit set as given.
    #[must_use]
    pub fn with_split(self, split: bool) -> Self {
        if split { Self(self.0 | Self::SPLIT) } else { Self(self.0 & !Self::SPLIT) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        let f = Flag(7);
        assert!(f.ack() && f.split());
        assert_eq!(f.version(), Version::Hj212_2017);
        assert_eq!(Flag(9).version(), Version::Hj212_2025);
        assert!(Flag(9).ack() && !Flag(9).split());
        assert_eq!(Flag(0).version(), Version::Hj212_2005);
        assert_eq!(Flag(0xFC).version(), Version::Other(63));
        assert_eq!(Flag::for_version(Version::Hj212_2017).0, 4);
        assert_eq!(Flag::for_version(Version::Hj212_2025).with_ack(true).0, 9);
        assert_eq!(Flag::for_version(Version::Hj212_2017).with_split(true).with_ack(true).0, 7);
        assert_eq!(Flag(7).with_split(false).0, 5);
    }
}
