//! Canonical byte encodings: the exact bytes that are MACed and signed. XML text is
//! never signed; a verifier rebuilds these bytes from parsed fields, so whitespace,
//! attribute order or escaping in a file can never change what was authenticated.
//!
//! Building blocks (all big-endian):
//! - `str8(s)`: one length byte, then the ASCII bytes of `s` (every text field is ≤ 254 bytes);
//! - `opt(x)`: `0x00` when absent, else `0x01` followed by `x`;
//! - `i64`: eight bytes, two's complement.
//!
//! Every message starts with a domain label and a zero byte, so a MAC or signature
//! made for one purpose can never be replayed as another.

/// Domain label of an export entry MAC.
pub const EXPORT_ENTRY_DOMAIN: &[u8] = b"resetdesk.export-entry.v1\0";
/// Domain label of a version 2 export entry MAC (bound to its export).
pub const EXPORT_ENTRY_DOMAIN_V2: &[u8] = b"resetdesk.export-entry.v2\0";
/// Domain label of a response signature.
pub const RESPONSE_DOMAIN: &[u8] = b"resetdesk.response.v1\0";
/// Domain label of a version 2 response signature.
pub const RESPONSE_DOMAIN_V2: &[u8] = b"resetdesk.response.v2\0";
/// Domain label of the response key HMAC.
pub const RESPONSE_KEY_DOMAIN: &[u8] = b"resetdesk.response-key.v1\0";
/// Domain label of the version 2 response key HMAC.
pub const RESPONSE_KEY_DOMAIN_V2: &[u8] = b"resetdesk.response-key.v2\0";

/// The domain labels of one kind of message, one per protocol version.
pub(crate) struct Labels {
    pub v1: &'static [u8],
    pub v2: &'static [u8],
}

/// An export entry's MAC.
pub(crate) const EXPORT_ENTRY: Labels = Labels {
    v1: EXPORT_ENTRY_DOMAIN,
    v2: EXPORT_ENTRY_DOMAIN_V2,
};
/// A response's signature.
pub(crate) const RESPONSE: Labels = Labels {
    v1: RESPONSE_DOMAIN,
    v2: RESPONSE_DOMAIN_V2,
};
/// A typed response key's HMAC.
pub(crate) const RESPONSE_KEY: Labels = Labels {
    v1: RESPONSE_KEY_DOMAIN,
    v2: RESPONSE_KEY_DOMAIN_V2,
};

/// Appends canonical fields to a byte buffer.
#[derive(Default)]
pub(crate) struct ByteWriter(Vec<u8>);

impl ByteWriter {
    pub fn with_domain(domain: &[u8]) -> Self {
        Self(domain.to_vec())
    }

    /// Starts a message of the version `export_id` says: its label and version byte and,
    /// in version 2, the id of the export it belongs to (`None`: version 1).
    pub fn versioned(labels: &Labels, export_id: Option<&[u8; 16]>) -> Self {
        match export_id {
            None => {
                let mut writer = Self::with_domain(labels.v1);
                writer.u8(super::PROTOCOL_V1);
                writer
            }
            Some(export_id) => {
                let mut writer = Self::with_domain(labels.v2);
                writer.u8(super::PROTOCOL_V2).bytes(export_id);
                writer
            }
        }
    }

    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }

    pub fn str8(&mut self, value: &str) -> &mut Self {
        // Domain types cap every text field well below 255 bytes.
        debug_assert!(value.len() < 256);
        self.0.push(value.len() as u8);
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn presence(&mut self, present: bool) -> &mut Self {
        self.0.push(u8::from(present));
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Reads canonical fields back, for the binary payload of a reset string.
pub(crate) struct ByteReader<'a> {
    rest: &'a [u8],
}

/// The payload ended early or held an impossible value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncated;

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.rest.len() < n {
            return Err(Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take(1)?[0])
    }

    /// A `str8` field; non-ASCII bytes come back replaced so the field check names them.
    pub fn str8(&mut self) -> Result<String, Truncated> {
        let len = usize::from(self.u8()?);
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    pub fn i64(&mut self) -> Result<i64, Truncated> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn presence(&mut self) -> Result<bool, Truncated> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Truncated),
        }
    }
}
