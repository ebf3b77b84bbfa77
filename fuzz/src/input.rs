//! Reading structured choices out of fuzz bytes: each read takes what it
//! needs from the front and yields zero once the bytes run out, so every
//! input decodes to something.

pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.bytes.split_first() else {
            return 0;
        };
        self.bytes = rest;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A small signed offset, mostly within a few segments of zero.
    pub fn near(&mut self, scale: i64) -> i64 {
        let v = self.u8() as i8 as i64;
        match self.u8() % 4 {
            0 => v,
            1 | 2 => v * scale,
            _ => v * scale * 64,
        }
    }

    /// Up to `max` bytes, as a slice of the input.
    pub fn take(&mut self, max: usize) -> &'a [u8] {
        let n = max.min(self.bytes.len());
        let (a, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        a
    }
}
