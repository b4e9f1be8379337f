//! Handshake records (alone or in batches) lowered into a plugin's memory
//! in one pass.
//!
//! wasmtime's derived lowering writes a record field by field, and every
//! write looks the linear memory up again through the instance (measured:
//! a quarter of the chain's time for the 40-field handshake). Here the
//! strings and the tag list go first (they allocate in the plugin, which
//! may move its memory), then the memory is looked up once and every scalar
//! written at its canonical-ABI offset. The type check is the derived one,
//! so a plugin of another layout is refused exactly as before; the tests
//! run a plugin that reports back every field it received.

use std::sync::OnceLock;

use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext};
use wasmtime::component::{ComponentType, Lower};

use super::types::{self, Handshake};

/// A scalar written straight into a byte slice.
trait Put: ComponentType {
    fn put(&self, mem: &mut [u8], at: usize);
}

macro_rules! put_le {
    ($($t:ty),*) => {$(
        impl Put for $t {
            #[inline(always)]
            fn put(&self, mem: &mut [u8], at: usize) {
                let bytes = self.to_le_bytes();
                mem[at..at + bytes.len()].copy_from_slice(&bytes);
            }
        }
    )*};
}
put_le!(u8, u16, u32, u64, i64, f64);

impl Put for bool {
    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        mem[at] = u8::from(*self);
    }
}

/// WIT enums: one byte, the case's index (the bindings declare the cases in
/// WIT order, so the Rust discriminant is that index).
macro_rules! put_enum {
    ($($t:ty),*) => {$(
        impl Put for $t {
            #[inline(always)]
            fn put(&self, mem: &mut [u8], at: usize) {
                mem[at] = *self as u8;
            }
        }
    )*};
}
put_enum!(types::Direction, types::Outcome, types::Side);

/// `option<T>`: a discriminant byte, the payload at T's alignment.
impl<T: Put> Put for Option<T> {
    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        match self {
            None => mem[at] = 0,
            Some(v) => {
                mem[at] = 1;
                v.put(mem, at + T::ABI.align32 as usize);
            }
        }
    }
}

/// The fields in WIT order: (name, Rust type), strings and lists marked.
macro_rules! handshake_fields {
    ($m:ident) => {
        $m! {
            scalar id: u64,
            scalar ts_us: i64,
            string client_ip: String,
            scalar client_port: u16,
            string server_ip: String,
            scalar server_port: u16,
            scalar ip_version: u8,
            string vlan: String,
            scalar direction: types::Direction,
            scalar outcome: types::Outcome,
            scalar completed: bool,
            scalar syn_count: u32,
            scalar syns_before_synack: u32,
            scalar synack_count: u32,
            scalar first_syn_us: i64,
            scalar first_synack_us: Option<i64>,
            scalar ack_us: Option<i64>,
            scalar rtt_last_syn_us: Option<f64>,
            scalar rtt_first_syn_us: Option<f64>,
            scalar client_rtt_us: Option<f64>,
            scalar reordered: bool,
            scalar synack_seq_changed: bool,
            scalar rst_from: Option<types::Side>,
            scalar client_ttl: u8,
            scalar client_initial_ttl: u8,
            scalar client_hops: u8,
            scalar server_ttl: Option<u8>,
            scalar server_initial_ttl: Option<u8>,
            scalar server_hops: Option<u8>,
            scalar client_mss: Option<u16>,
            scalar client_wscale: Option<u8>,
            scalar client_sack_permitted: bool,
            scalar client_timestamps: bool,
            scalar server_mss: Option<u16>,
            scalar server_wscale: Option<u8>,
            scalar server_sack_permitted: Option<bool>,
            scalar server_timestamps: Option<bool>,
            scalar syn_data_len: u32,
            scalar ecn_setup: bool,
            string tags: Vec<types::Tag>,
        }
    };
}

/// The fields' offsets in the record, computed once from their ABIs.
fn offsets() -> &'static [usize] {
    static OFFSETS: OnceLock<Vec<usize>> = OnceLock::new();
    OFFSETS.get_or_init(|| {
        macro_rules! abis {
            ($($kind:ident $name:ident: $t:ty,)*) => {
                [$(<$t as ComponentType>::ABI,)*]
            };
        }
        let abis: Vec<CanonicalAbiInfo> = handshake_fields!(abis).to_vec();
        let mut at = 0usize;
        abis.iter().map(|abi| abi.next_field32_size(&mut at)).collect()
    })
}

/// A handshake record, lowered in one pass (see the module docs).
#[derive(Clone, Copy)]
pub struct FastHandshake<'a>(pub &'a Handshake);

/// The component type of a wrapper is the derived type's: its ABI, its
/// flat representation and its type check.
macro_rules! same_type_as {
    ($fast:ident => $derived:ty) => {
        // SAFETY: everything is the derived type's; the wrapper's
        // `linear_lower_to_memory` writes the same bytes at the same offsets
        // (checked by the tests against a plugin that reports every field
        // back).
        unsafe impl ComponentType for $fast<'_> {
            type Lower = <$derived as ComponentType>::Lower;
            const ABI: CanonicalAbiInfo = <$derived as ComponentType>::ABI;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$derived as ComponentType>::typecheck(ty, types)
            }
        }
    };
}

same_type_as!(FastHandshake => Handshake);

// SAFETY: see `same_type_as`.
unsafe impl Lower for FastHandshake<'_> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let InterfaceType::Record(index) = ty else {
            wasmtime::bail!("a handshake must be a record");
        };
        let offsets = offsets();
        let h = self.0;
        // Strings and lists first: they call into the plugin to allocate.
        {
            let mut i = 0usize;
            macro_rules! strings {
                ($($kind:ident $name:ident: $t:ty,)*) => {$(
                    strings!(@one $kind $name);
                    i += 1;
                )*};
                (@one string $name:ident) => {{
                    let field_ty = cx.types[index].fields[i].ty;
                    h.$name.linear_lower_to_memory(cx, field_ty, offset + offsets[i])?;
                }};
                (@one scalar $name:ident) => {};
            }
            handshake_fields!(strings);
            let _ = i;
        }
        // Then every scalar, with one look-up of the memory.
        let size = Self::ABI.size32 as usize;
        let Some(mem) = cx.as_slice_mut().get_mut(offset..offset + size) else {
            wasmtime::bail!("handshake record out of bounds");
        };
        let mut i = 0usize;
        macro_rules! scalars {
            ($($kind:ident $name:ident: $t:ty,)*) => {$(
                scalars!(@one $kind $name);
                i += 1;
            )*};
            (@one scalar $name:ident) => {
                h.$name.put(mem, offsets[i]);
            };
            (@one string $name:ident) => {};
        }
        handshake_fields!(scalars);
        let _ = i;
        Ok(())
    }
}

/// An `event` of a batch, its handshakes lowered by [`FastHandshake`].
#[derive(Clone, Copy)]
pub struct FastEvent<'a>(pub &'a types::Event);

same_type_as!(FastEvent => types::Event);

// SAFETY: see `same_type_as`; the discriminant and payload offset are the
// variant's.
unsafe impl Lower for FastEvent<'_> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let types::Event::Handshake(h) = self.0 else {
            return self.0.linear_lower_to_memory(cx, ty, offset);
        };
        let InterfaceType::Variant(index) = ty else {
            wasmtime::bail!("an event must be a variant");
        };
        // Case 0, handshake: a one-byte discriminant (four cases), the
        // payload at the variant's payload offset.
        let case_ty = match cx.types[index].cases.get_index(0) {
            Some((name, Some(t))) if name == "handshake" => *t,
            _ => wasmtime::bail!("event case 0 is not handshake(handshake)"),
        };
        *cx.get::<1>(offset) = [0];
        let payload = <types::Event as wasmtime::component::__internal::ComponentVariant>::PAYLOAD_OFFSET32;
        FastHandshake(h).linear_lower_to_memory(cx, case_ty, offset + payload)
    }
}
