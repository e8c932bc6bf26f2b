//! Which device a [`View`] belongs to, and whether its buffer still holds the allocation the
//! view was made from. A [`Device`](super::Device) stamps each buffer it hands out with its own
//! identity and a fresh generation ([`Owner`]), and checks the stamp of every view an op is
//! given. A view of another device, or one whose buffer went back to the pool (a dropped tape's
//! value, a buffer released twice), is then an error instead of someone else's numbers.
//!
//! Views a backend makes for its own scratch never reach the device's checks, and carry
//! [`Owner::NONE`].

use crate::backend::ByteBuffer;
use crate::tensor::{Owner, View};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

/// Device identities, from 1 (0 is [`Owner::NONE`]'s).
static NEXT_DEVICE: AtomicU32 = AtomicU32::new(1);

/// Hashes a buffer id by Fibonacci multiplication: ids are small distinct integers, and a
/// training step checks a few hundred views, so the default SipHash would cost more than
/// the lookups themselves.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<usize, V, BuildHasherDefault<IdHasher>>;

/// One live allocation: the generation its views carry, and its length in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Live {
    generation: u64,
    /// Elements (f32) of a buffer, bytes of a byte buffer.
    len: usize,
    /// A byte buffer ([`ByteBuffer`]), which no [`View`] may name.
    bytes: bool,
}

/// Another device's buffers that this one may use: what a data-parallel worker is lent for
/// one step (see [`crate::autograd::data_parallel`]).
#[derive(Clone, Debug)]
pub struct Loan {
    device: u32,
    live: IdMap<Live>,
}

/// A device's record of the buffers it has handed out.
#[derive(Debug)]
pub(crate) struct Registry {
    id: u32,
    next_generation: u64,
    live: IdMap<Live>,
    loan: Option<Loan>,
}

impl Registry {
    /// A registry with a new device identity.
    pub(crate) fn new() -> Registry {
        Registry {
            id: NEXT_DEVICE.fetch_add(1, Ordering::Relaxed),
            next_generation: 1,
            live: IdMap::default(),
            loan: None,
        }
    }

    /// This device's identity, as its views carry it.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Stamp a whole buffer the device is handing out.
    pub(crate) fn issue(&mut self, buf: usize, len: usize) -> View {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.live.insert(buf, Live { generation, len, bytes: false });
        View { buf, offset: 0, len, owner: Owner { device: self.id, generation } }
    }

    /// Stamp a byte buffer of `len` bytes the device is handing out.
    pub(crate) fn issue_bytes(&mut self, id: usize, len: usize) -> ByteBuffer {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.live.insert(id, Live { generation, len, bytes: true });
        ByteBuffer { id, owner: Owner { device: self.id, generation } }
    }

    /// The length in bytes of `b`, a live byte buffer of this device; else why not.
    pub(crate) fn check_bytes(&self, b: &ByteBuffer) -> Result<usize, String> {
        let Some(live) = self.allocations_of(b.owner.device) else {
            return Err(format!(
                "byte buffer {} belongs to device #{}, not to device #{}: upload it to the device that uses it",
                b.id, b.owner.device, self.id
            ));
        };
        match live.get(&b.id) {
            Some(l) if l.bytes && l.generation == b.owner.generation => Ok(l.len),
            _ => Err(format!("byte buffer {} was freed (Device::free_bytes): upload the data again", b.id)),
        }
    }

    /// Take back a byte buffer being freed; an `Err` (and nothing taken back) when it is not a
    /// live byte buffer of this device.
    pub(crate) fn retire_bytes(&mut self, b: ByteBuffer) -> Result<(), String> {
        self.check_bytes(&b)?;
        if b.owner.device != self.id {
            return Err(format!("byte buffer {} was lent to this device: only its owner frees it", b.id));
        }
        self.live.remove(&b.id);
        Ok(())
    }

    /// Take back a whole buffer being released; an `Err` (and nothing taken back) when `v` is
    /// not a live whole buffer of this device.
    pub(crate) fn retire(&mut self, v: View) -> Result<(), String> {
        self.check(&v)?;
        if v.owner.device != self.id {
            return Err(format!(
                "buffer {} belongs to device #{} and was lent to this one: only its owner releases it",
                v.buf, v.owner.device
            ));
        }
        let whole = self.live.get(&v.buf).map(|l| l.len);
        if v.offset != 0 || whole != Some(v.len) {
            return Err(format!(
                "a slice (elements {}..{}) of buffer {} was released: release the whole view that Device::alloc returned",
                v.offset,
                v.offset + v.len,
                v.buf
            ));
        }
        self.live.remove(&v.buf);
        Ok(())
    }

    /// The live allocations of `device` this device may use: its own, or a lender's.
    fn allocations_of(&self, device: u32) -> Option<&IdMap<Live>> {
        if device == self.id {
            return Some(&self.live);
        }
        self.loan.as_ref().filter(|l| l.device == device).map(|l| &l.live)
    }

    /// Whether `v` names a live allocation this device may use, and lies inside it.
    pub(crate) fn check(&self, v: &View) -> Result<(), String> {
        let live = if let Some(live) = self.allocations_of(v.owner.device) {
            live
        } else if v.owner.device == 0 {
            return Err(format!(
                "a view of buffer {} that no device handed out: make views with Device::alloc (or upload) and View::slice",
                v.buf
            ));
        } else {
            return Err(format!(
                "a view of device #{}'s buffer {} was given to device #{}: a view belongs to the device that allocated it; use that device, or copy the values through the host (read, then upload)",
                v.owner.device, v.buf, self.id
            ));
        };
        match live.get(&v.buf) {
            Some(l) if l.generation == v.owner.generation && !l.bytes => {
                if v.offset.checked_add(v.len).is_some_and(|end| end <= l.len) {
                    Ok(())
                } else {
                    Err(format!(
                        "a view of elements {}..{} of buffer {}, which holds {}",
                        v.offset,
                        v.offset.saturating_add(v.len),
                        v.buf,
                        l.len
                    ))
                }
            }
            _ => Err(format!(
                "a view of buffer {} after the buffer was released (its tape was reset or dropped, or Device::release took it back): its values are gone; read or copy a value before releasing it",
                v.buf
            )),
        }
    }

    /// What this device may lend a worker: its live buffers, as they are now.
    pub(crate) fn loan(&self) -> Loan {
        Loan { device: self.id, live: self.live.clone() }
    }

    /// Accept (or, with `None`, stop accepting) another device's views.
    pub(crate) fn set_loan(&mut self, loan: Option<Loan>) {
        self.loan = loan;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_buffer_reissued_refuses_its_old_views() {
        let mut r = Registry::new();
        let a = r.issue(3, 10);
        assert!(r.check(&a).is_ok() && r.check(&a.slice(2, 8)).is_ok());
        r.retire(a).unwrap();
        assert!(r.check(&a).unwrap_err().contains("released"));
        let b = r.issue(3, 10);
        assert!(r.check(&a).is_err() && r.check(&b).is_ok());
        assert!(r.retire(a).is_err(), "a second release of the old allocation");
        assert!(r.check(&b).is_ok(), "the refused release took nothing back");
    }

    #[test]
    fn strangers_slices_and_overruns_are_refused() {
        let (mut r, mut s) = (Registry::new(), Registry::new());
        let a = r.issue(0, 4);
        let b = s.issue(0, 4);
        assert!(r.check(&b).unwrap_err().contains("belongs to the device that allocated it"));
        assert!(r.retire(a.slice(1, 3)).unwrap_err().contains("slice"));
        let over = View { len: 5, ..a };
        assert!(r.check(&over).unwrap_err().contains("holds 4"));
        let unstamped = View { owner: Owner::NONE, ..a };
        assert!(r.check(&unstamped).unwrap_err().contains("no device handed out"));
        r.set_loan(Some(s.loan()));
        assert!(r.check(&b).is_ok(), "a lent view is accepted");
        assert!(r.retire(b).is_err(), "but not released by the borrower");
        r.set_loan(None);
        assert!(r.check(&b).is_err());
    }
}
