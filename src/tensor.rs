//! Tensors: a shape plus a view of contiguous row-major `f32` storage owned by a device.
//!
//! Storage is addressed by handle ([`View`]: buffer id, element offset, length), never by a
//! host pointer, so the same autograd, layers and training loop drive both backends.

/// A contiguous range of one device buffer, in `f32` elements.
///
/// A view made by [`Device::alloc`](crate::backend::Device::alloc) (and [`View::slice`] of one)
/// carries its [`Owner`]: the device checks it on every op, so a view of another device, or of
/// a buffer released since, is an error rather than someone else's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// The device's buffer id.
    pub buf: usize,
    /// First element, in `f32` elements from the buffer's start.
    pub offset: usize,
    /// Elements in the view.
    pub len: usize,
    /// The allocation the view was made from.
    pub owner: Owner,
}

/// The allocation a [`View`] belongs to: the device that handed the buffer out, and which of
/// its hand-outs of that buffer (a buffer back from the pool gets a new generation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The device's identity (from 1, unique in the process).
    pub device: u32,
    /// The hand-out, counted per device from 1.
    pub generation: u64,
}

impl Owner {
    /// No device's: a backend's view of its own scratch, which a [`Device`](crate::backend::Device) refuses.
    pub const NONE: Owner = Owner { device: 0, generation: 0 };
}

impl View {
    /// A view of a whole buffer of `len` elements that no device stamped ([`Owner::NONE`]):
    /// for a backend's own scratch buffers.
    pub fn whole(buf: usize, len: usize) -> View {
        View { buf, offset: 0, len, owner: Owner::NONE }
    }

    /// A sub-range, relative to this view, of the same allocation.
    pub fn slice(&self, offset: usize, len: usize) -> View {
        assert!(offset + len <= self.len, "slice {offset}+{len} outside a view of {}", self.len);
        View { offset: self.offset + offset, len, ..*self }
    }

    /// The view's elements as a range of buffer indices.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// A tensor: row-major shape over a view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Where the values are.
    pub view: View,
    /// Row-major dimensions; their product is `view.len`.
    pub shape: Vec<usize>,
}

impl Tensor {
    /// A tensor over `view`; an `Err` when the shape's product is not the view's length.
    pub fn new(view: View, shape: &[usize]) -> anyhow::Result<Tensor> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        anyhow::ensure!(
            n == Some(view.len),
            "shape {shape:?} holds {} values, but the view holds {}: give a shape whose product is the view's length",
            n.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
            view.len
        );
        Ok(Tensor { view, shape: shape.to_vec() })
    }

    /// Elements in the tensor.
    pub fn len(&self) -> usize {
        self.view.len
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.view.len == 0
    }
}
