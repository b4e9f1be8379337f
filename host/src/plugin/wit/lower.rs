//! Records lowered into a plugin's memory in one pass, for every contract
//! version (each lists its record's fields with [`one_pass_record!`]).
//!
//! wasmtime's derived lowering writes a record field by field, and every
//! write looks the linear memory up again through the instance (measured:
//! a quarter of the chain's time for the 40-field handshake). Here the
//! non-empty strings and lists go first (they allocate in the plugin, which
//! may move its memory), then the memory is looked up once and every other
//! field written at its canonical-ABI offset. The type check is the derived
//! one, so a plugin of another layout is refused exactly as before; the
//! tests run plugins that report back every field they received.

use wasmtime::component::__internal::wasmtime_environ::component::TypeRecordIndex;
use wasmtime::component::__internal::{CanonicalAbiInfo, LowerContext};
use wasmtime::component::{ComponentType, Lower};

/// A field of a record lowered in one pass.
pub trait Field: ComponentType + Lower {
    /// Lowers what needs memory allocated in the plugin (non-empty strings
    /// and lists) at `at`; nothing for the others.
    #[inline(always)]
    fn lower_allocated<T>(
        &self,
        _cx: &mut LowerContext<'_, T>,
        _record: TypeRecordIndex,
        _field: usize,
        _at: usize,
    ) -> wasmtime::Result<()> {
        Ok(())
    }

    /// Writes the field into `mem` at `at` unless `lower_allocated` did.
    fn put(&self, mem: &mut [u8], at: usize);
}

macro_rules! put_le {
    ($($t:ty),*) => {$(
        impl Field for $t {
            #[inline(always)]
            fn put(&self, mem: &mut [u8], at: usize) {
                let bytes = self.to_le_bytes();
                mem[at..at + bytes.len()].copy_from_slice(&bytes);
            }
        }
    )*};
}
put_le!(u8, u16, u32, u64, i64, f64);

impl Field for bool {
    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        mem[at] = u8::from(*self);
    }
}

/// A pair of scalars (`lower_allocated` is not passed on, as for options).
impl<A: Field, B: Field> Field for (A, B) {
    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        self.0.put(mem, at);
        let mut offset = 0usize;
        A::ABI.next_field32_size(&mut offset);
        self.1.put(mem, at + B::ABI.next_field32_size(&mut offset));
    }
}

/// WIT enums: one byte, the case's index (the bindings declare the cases in
/// WIT order, so the Rust discriminant is that index).
macro_rules! put_enum {
    ($($t:ty),*) => {$(
        impl $crate::plugin::wit::lower::Field for $t {
            #[inline(always)]
            fn put(&self, mem: &mut [u8], at: usize) {
                mem[at] = *self as u8;
            }
        }
    )*};
}
pub(crate) use put_enum;

/// `option<T>`: a discriminant byte, the payload at T's alignment. For
/// scalar payloads only: `lower_allocated` is not passed on (no record
/// lowered in one pass has an optional string or list).
impl<T: Field> Field for Option<T> {
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

/// Strings and lists. An empty one is written without asking the plugin
/// for memory: the canonical ABI would call the plugin's `realloc` for zero
/// bytes, which allocates nothing (wit-bindgen returns the alignment itself
/// as the pointer). The plugin reads zero elements at an aligned, non-null
/// address either way, and a call into it is saved per empty field.
trait Sequence: Lower {
    /// The alignment of one element.
    const ELEMENT_ALIGN: u32;
    fn is_empty(&self) -> bool;
}

impl Sequence for String {
    /// 2, not 1: aligned for plugins that take strings as UTF-16 too.
    const ELEMENT_ALIGN: u32 = 2;
    fn is_empty(&self) -> bool {
        str::is_empty(self)
    }
}

impl<T: ComponentType + Lower> Sequence for Vec<T> {
    const ELEMENT_ALIGN: u32 = T::ABI.align32;
    fn is_empty(&self) -> bool {
        <[T]>::is_empty(self)
    }
}

fn lower_sequence<S: Sequence, T>(
    s: &S,
    cx: &mut LowerContext<'_, T>,
    record: TypeRecordIndex,
    field: usize,
    at: usize,
) -> wasmtime::Result<()> {
    if s.is_empty() {
        return Ok(());
    }
    let Some(ty) = cx.types[record].fields.get(field).map(|f| f.ty) else {
        wasmtime::bail!("record has no field {field}");
    };
    s.linear_lower_to_memory(cx, ty, at)
}

#[inline(always)]
fn put_sequence<S: Sequence>(s: &S, mem: &mut [u8], at: usize) {
    if s.is_empty() {
        S::ELEMENT_ALIGN.put(mem, at);
        0u32.put(mem, at + 4);
    }
}

impl Field for String {
    fn lower_allocated<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        record: TypeRecordIndex,
        field: usize,
        at: usize,
    ) -> wasmtime::Result<()> {
        lower_sequence(self, cx, record, field, at)
    }

    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        put_sequence(self, mem, at)
    }
}

impl<E: ComponentType + Lower> Field for Vec<E> {
    fn lower_allocated<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        record: TypeRecordIndex,
        field: usize,
        at: usize,
    ) -> wasmtime::Result<()> {
        lower_sequence(self, cx, record, field, at)
    }

    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        put_sequence(self, mem, at)
    }
}

/// `$fast`, a wrapper of `&$derived` (a record with these fields, in WIT
/// order, with their Rust types), lowered in one pass: first the fields
/// that allocate in the plugin, then one look-up of the memory for the rest.
macro_rules! one_pass_record {
    ($fast:ident => $derived:ty { $($name:ident: $t:ty,)* }) => {
        $crate::plugin::wit::lower::wrapper!($fast => $derived);

        impl $fast<'_> {
            fn lower_to_memory<T>(
                &self,
                cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
                ty: wasmtime::component::__internal::InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                self.lower_after(cx, ty, offset, None)
            }

            /// Lowers the record at `offset`; with `lead` = (n, byte), also
            /// writes `byte` n bytes before it (a variant's discriminant)
            /// with the same look-up of the memory.
            pub fn lower_after<T>(
                &self,
                cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
                ty: wasmtime::component::__internal::InterfaceType,
                offset: usize,
                lead: Option<(usize, u8)>,
            ) -> wasmtime::Result<()> {
                use $crate::plugin::wit::lower::Field as _;
                use wasmtime::component::ComponentType as _;
                static OFFSETS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
                let offsets = OFFSETS.get_or_init(|| {
                    $crate::plugin::wit::lower::offsets(&[$(<$t as wasmtime::component::ComponentType>::ABI,)*])
                });
                let wasmtime::component::__internal::InterfaceType::Record(record) = ty else {
                    wasmtime::bail!("expected a record");
                };
                let v = self.0;
                let mut i = 0usize;
                $(
                    v.$name.lower_allocated(cx, record, i, offset + offsets[i])?;
                    i += 1;
                )*
                let size = Self::ABI.size32 as usize;
                let (before, byte) = lead.unwrap_or((0, 0));
                let Some(mem) = offset
                    .checked_sub(before)
                    .and_then(|start| cx.as_slice_mut().get_mut(start..offset + size))
                else {
                    wasmtime::bail!("record out of bounds");
                };
                if before > 0 {
                    mem[0] = byte;
                }
                let mut i = 0usize;
                $(
                    <$t as $crate::plugin::wit::lower::Field>::put(&v.$name, mem, before + offsets[i]);
                    i += 1;
                )*
                let _ = i;
                Ok(())
            }
        }
    };
}
pub(crate) use one_pass_record;

/// `$fast`, a wrapper of `&$event` (the `event` variant) whose `$case`
/// payload (case 0) is lowered by `$fast_case`; other cases as derived.
macro_rules! one_pass_event {
    ($fast:ident => $event:ty, $case:path => $fast_case:ident) => {
        $crate::plugin::wit::lower::wrapper!($fast => $event);

        impl $fast<'_> {
            /// The discriminant and payload offset are the variant's.
            fn lower_to_memory<T>(
                &self,
                cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
                ty: wasmtime::component::__internal::InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                let $case(record) = self.0 else {
                    return wasmtime::component::Lower::linear_lower_to_memory(self.0, cx, ty, offset);
                };
                let wasmtime::component::__internal::InterfaceType::Variant(index) = ty else {
                    wasmtime::bail!("an event must be a variant");
                };
                // Case 0: a one-byte discriminant (four cases), the payload
                // at the variant's payload offset.
                let case_ty = match cx.types[index].cases.get_index(0) {
                    Some((_, Some(t))) => *t,
                    _ => wasmtime::bail!("event case 0 has no payload"),
                };
                let payload =
                    <$event as wasmtime::component::__internal::ComponentVariant>::PAYLOAD_OFFSET32;
                $fast_case(record).lower_after(cx, case_ty, offset + payload, Some((payload, 0)))
            }
        }
    };
}
pub(crate) use one_pass_event;

/// The offsets of fields with these ABIs in a record.
pub fn offsets(abis: &[CanonicalAbiInfo]) -> Vec<usize> {
    let mut at = 0usize;
    abis.iter().map(|abi| abi.next_field32_size(&mut at)).collect()
}

/// `$fast`, a wrapper of `&$derived` whose component type is `$derived`'s
/// (its ABI, its flat representation and its type check) and which lowers
/// into memory by its own `lower_to_memory`.
macro_rules! wrapper {
    ($fast:ident => $derived:ty) => {
        #[derive(Clone, Copy)]
        pub struct $fast<'a>(pub &'a $derived);

        // SAFETY: see the `ComponentType` impl below.
        unsafe impl wasmtime::component::Lower for $fast<'_> {
            fn linear_lower_to_flat<T>(
                &self,
                cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
                ty: wasmtime::component::__internal::InterfaceType,
                dst: &mut std::mem::MaybeUninit<Self::Lower>,
            ) -> wasmtime::Result<()> {
                self.0.linear_lower_to_flat(cx, ty, dst)
            }

            fn linear_lower_to_memory<T>(
                &self,
                cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
                ty: wasmtime::component::__internal::InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                self.lower_to_memory(cx, ty, offset)
            }
        }

        // SAFETY: everything is the derived type's; the wrapper's
        // `linear_lower_to_memory` writes the same bytes at the same offsets
        // (checked by the tests against a plugin that reports every field
        // back).
        unsafe impl wasmtime::component::ComponentType for $fast<'_> {
            type Lower = <$derived as wasmtime::component::ComponentType>::Lower;
            const ABI: wasmtime::component::__internal::CanonicalAbiInfo =
                <$derived as wasmtime::component::ComponentType>::ABI;

            fn typecheck(
                ty: &wasmtime::component::__internal::InterfaceType,
                types: &wasmtime::component::__internal::InstanceType<'_>,
            ) -> wasmtime::Result<()> {
                <$derived as wasmtime::component::ComponentType>::typecheck(ty, types)
            }
        }
    };
}
pub(crate) use wrapper;

/// `FastHandshake` and `FastEvent` of a version module (with `types`):
/// every contract version so far has the same handshake fields, addresses
/// and the VLAN stack of type `$ip` and `$vlan`.
macro_rules! one_pass_handshake {
    (ip: $ip:ty, vlan: $vlan:ty) => {
        $crate::plugin::wit::lower::one_pass_record!(FastHandshake => types::Handshake {
            id: u64,
            ts_us: i64,
            client_ip: $ip,
            client_port: u16,
            server_ip: $ip,
            server_port: u16,
            ip_version: u8,
            vlan: $vlan,
            direction: types::Direction,
            outcome: types::Outcome,
            completed: bool,
            syn_count: u32,
            syns_before_synack: u32,
            synack_count: u32,
            first_syn_us: i64,
            first_synack_us: Option<i64>,
            ack_us: Option<i64>,
            rtt_last_syn_us: Option<f64>,
            rtt_first_syn_us: Option<f64>,
            client_rtt_us: Option<f64>,
            reordered: bool,
            synack_seq_changed: bool,
            rst_from: Option<types::Side>,
            client_ttl: u8,
            client_initial_ttl: u8,
            client_hops: u8,
            server_ttl: Option<u8>,
            server_initial_ttl: Option<u8>,
            server_hops: Option<u8>,
            client_mss: Option<u16>,
            client_wscale: Option<u8>,
            client_sack_permitted: bool,
            client_timestamps: bool,
            server_mss: Option<u16>,
            server_wscale: Option<u8>,
            server_sack_permitted: Option<bool>,
            server_timestamps: Option<bool>,
            syn_data_len: u32,
            ecn_setup: bool,
            tags: Vec<types::Tag>,
        });

        $crate::plugin::wit::lower::one_pass_event!(FastEvent => types::Event, types::Event::Handshake => FastHandshake);
    };
}
pub(crate) use one_pass_handshake;
