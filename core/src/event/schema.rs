//! The event schema: each event record's fields, in order, taken from the
//! Rust definitions themselves.
//!
//! The records of [`crate::event`] are declared through [`declare_record!`] (and their enums through [`declare_values!`]), which
//! keeps the struct as written (serde derives and all) and adds `FIELDS`:
//! the field names and Rust types in declaration order, which is also the
//! order of the JSON output. Everything else that lists fields checks
//! itself against this: the WIT records of the plugin contract, the
//! collector's typed ingest and tables, and the field tables of
//! `docs/events.md` (each by a test next to it). A field added here and
//! nowhere else fails those tests, naming the field.

/// Every type the records' fields are written with, by the name they are
/// written with: code expanded from a field-list macro (`handshake_fields!`
/// …) names them as the schema does, so it starts with `use
/// net_gazer_core::event::schema::field_types::*;`.
pub mod field_types {
    pub use crate::decode::VlanStack;
    pub use crate::event::{Direction, FlowEnd, HopResult, Outcome, Protocol, ScanPhase, ScanType, Side, Style};
    pub use crate::time::Timestamp;
    pub use std::net::IpAddr;
}

/// One field of an event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name as in JSON (`snake_case`; the WIT name is the same in
    /// `kebab-case`).
    pub name: &'static str,
    /// The Rust type as written, e.g. `Option<f64>`.
    pub ty: &'static str,
}

impl Field {
    /// The Rust type without spaces (`stringify!` may put some in).
    pub fn rust_type(&self) -> String {
        self.ty.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// The name in WIT.
    pub fn wit_name(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// A record of the schema: its name in `docs/events.md` and in WIT, and
/// its fields.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// The records events are made of: the five event kinds and the route's
/// hops.
pub const RECORDS: [Record; 6] = [
    Record {
        name: "handshake",
        fields: super::Handshake::FIELDS,
    },
    Record {
        name: "flow",
        fields: super::Flow::FIELDS,
    },
    Record {
        name: "scan",
        fields: super::Scan::FIELDS,
    },
    Record {
        name: "route",
        fields: super::Route::FIELDS,
    },
    Record {
        name: "hop",
        fields: super::HopResult::FIELDS,
    },
    Record {
        name: "stats",
        fields: super::Stats::FIELDS,
    },
];

/// The record named `name`.
pub fn record(name: &str) -> Option<Record> {
    RECORDS.into_iter().find(|r| r.name == name)
}

/// Declares an event record: the struct as written, plus `FIELDS`, plus a
/// field-list macro named by the invocation (`($) handshake_fields =>`;
/// the `$` is passed in so the macro can be written here).
///
/// The field-list macro is how code elsewhere is generated from the schema
/// instead of listing the fields again: `handshake_fields!(callback {
/// args })` expands to `callback! { { args } id: u64, ts: Timestamp, … }`,
/// every field with its Rust type in declaration order (the plugin host's
/// getters of contract 0.3 are written this way).
macro_rules! declare_record {
    (
        ($d:tt) $list:ident =>
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The fields in declaration (and JSON) order.
            pub const FIELDS: &'static [$crate::event::schema::Field] = &[
                $($crate::event::schema::Field {
                    name: stringify!($field),
                    ty: stringify!($ty),
                },)*
            ];
        }

        #[doc = concat!("The fields of [`", stringify!($name), "`] for code generated from the schema: `", stringify!($list), "!(callback { args })` expands to `callback! { { args } field: Type, … }` (see `declare_record!` in `event/schema.rs`).")]
        #[macro_export]
        macro_rules! $list {
            ($d callback:ident $d args:tt) => {
                $d callback! { $d args $($field : $ty,)* }
            };
        }
    };
}
pub(crate) use declare_record;

/// Declares an enum of the schema (unit variants only): the enum as
/// written, plus `VALUES`, every variant in declaration order (their names
/// are the serde ones, `snake_case`).
macro_rules! declare_values {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident,
            )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$variant_meta])*
                $variant,
            )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const VALUES: &'static [$name] = &[$($name::$variant,)*];
        }
    };
}
pub(crate) use declare_values;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Handshake};

    #[test]
    fn fields_are_the_json_keys_in_order() {
        let h = Handshake::sample(
            7,
            ("10.0.0.1".parse().unwrap(), 40000),
            ("192.0.2.1".parse().unwrap(), 443),
            crate::event::Direction::Outbound,
            crate::event::Outcome::Established,
        );
        let json = serde_json::to_string(&Event::Handshake(h)).unwrap();
        let keys = keys_in_order(&json);
        // `kind` is the tag; `vlan` is left out when empty.
        let expected: Vec<&str> = std::iter::once("kind")
            .chain(Handshake::FIELDS.iter().map(|f| f.name).filter(|n| *n != "vlan"))
            .collect();
        assert_eq!(keys, expected);
    }

    /// The keys of a JSON object in the order they are written.
    fn keys_in_order(json: &str) -> Vec<String> {
        use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(keys)
            }
        }
        serde_json::Deserializer::from_str(json).deserialize_map(Keys).unwrap()
    }

    #[test]
    fn types_read_as_written() {
        let rtt = Handshake::FIELDS.iter().find(|f| f.name == "rtt_last_syn_us").unwrap();
        assert_eq!(rtt.rust_type(), "Option<f64>");
        assert_eq!(rtt.wit_name(), "rtt-last-syn-us");
        assert_eq!(record("hop").unwrap().fields[0].name, "ttl");
    }
}
