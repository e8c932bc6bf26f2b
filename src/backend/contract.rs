//! The typed contract between Rust and WGSL: every kernel's scalars are a `#[repr(C)]` struct
//! declared with `kernel_params!`, which also lists its fields ([`Field`]) so
//! `tests/kernel_mirror.rs` can check them against the same-named WGSL struct through naga.

/// A scalar field of a kernel's parameter struct, for the WGSL mirror test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name, the same in Rust and WGSL.
    pub name: &'static str,
    /// Byte offset within the struct.
    pub offset: usize,
    /// `f32` or `u32` (flags are `u32` 0/1: WGSL has no host-shareable bool).
    pub ty: &'static str,
}

/// Declares a kernel parameter struct and the field table the mirror test reads.
macro_rules! kernel_params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ident,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, ::bytemuck::Pod, ::bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }
        impl $name {
            /// Every field in declaration order, as the WGSL twin must declare them.
            pub const FIELDS: &'static [$crate::backend::contract::Field] =
                &[$($crate::backend::contract::Field { name: stringify!($field), offset: std::mem::offset_of!($name, $field), ty: stringify!($ty) },)*];
        }
    };
}

pub(crate) use kernel_params;
