//! A JSON serializer for events, byte for byte the output of `serde_json`,
//! without its per-byte work on names that need none.
//!
//! `serde_json` escapes every key and string by looking up each byte; for an
//! event of ~45 fields that was 13 % of a replay's instructions. Here struct
//! field and variant names (static identifiers from our own derives) are
//! copied as they are, strings are scanned once for anything to escape and copied whole when
//! there is nothing, integers go through `itoa`, and floats through
//! `serde_json` itself so that their shortest form stays identical. The tests
//! compare the bytes with `serde_json` on every kind of value and on every
//! event of the shared captures.

use std::fmt::{self, Write as _};

use serde::ser::{self, Impossible, Serialize};

/// Appends `value` as one JSON object to `out`.
pub fn append<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// Appends the event with its tags as one JSON object: the event's fields,
/// then `"tags": {key: value, ...}` when a plugin added any.
pub fn append_tagged(out: &mut Vec<u8>, item: &crate::event::Tagged) -> Result<(), Error> {
    append(out, &item.event)?;
    if item.tags.is_empty() {
        return Ok(());
    }
    if out.last() != Some(&b'}') {
        return Err(Error("an event must serialise as an object".into()));
    }
    out.pop();
    out.extend_from_slice(b",\"tags\":{");
    for (i, tag) in item.tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, &tag.key);
        out.push(b':');
        string(out, &tag.value);
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `"s"` with JSON escapes, as `serde_json` writes them.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(out, s.as_bytes());
    out.push(b'"');
}

fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A struct field or variant name, copied as it is: these come from our own
/// derives (Rust identifiers, `snake_case` renames), never from outside, and
/// need no escapes; debug builds (the tests) check it.
#[inline(always)]
fn field_name(out: &mut Vec<u8>, key: &'static str) {
    debug_assert!(!key.bytes().any(needs_escape), "field name {key:?} needs escaping");
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.push(b'"');
}

impl Writer<'_> {
    fn integer(&mut self, v: impl itoa::Integer) -> Result<(), Error> {
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn float(&mut self, v: impl Serialize) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| Error(e.to_string()))
    }
}

/// Written text goes straight into the buffer; escaped afterwards only if
/// it needs it (addresses and timestamps never do).
struct Raw<'a>(&'a mut Vec<u8>);

impl fmt::Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The ten integer methods of a `Serializer`, each handing its value to
/// `self.$via`.
macro_rules! integers {
    ($via:ident) => {
        integers!($via: serialize_i8 i8, serialize_i16 i16, serialize_i32 i32, serialize_i64 i64,
            serialize_i128 i128, serialize_u8 u8, serialize_u16 u16, serialize_u32 u32,
            serialize_u64 u64, serialize_u128 u128);
    };
    ($via:ident: $($method:ident $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<(), Error> {
            self.$via(v)
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(integer);
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        field_name(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        field_name(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'[');
        Ok(Compound::new(self, b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        field_name(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Compound::new(self, b"]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        Ok(Compound::new(self, b"}"))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        field_name(self.out, variant);
        self.out.extend_from_slice(b":{");
        Ok(Compound::new(self, b"}}"))
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push(b'"');
        let start = self.out.len();
        write!(Raw(self.out), "{value}").map_err(|e| Error(e.to_string()))?;
        if self.out[start..].iter().copied().any(needs_escape) {
            let text = self.out.split_off(start);
            escaped(self.out, &text);
        }
        self.out.push(b'"');
        Ok(())
    }
}

/// An open array or object: writes the separators and the closing bytes.
pub struct Compound<'a, 'b> {
    w: &'a mut Writer<'b>,
    first: bool,
    close: &'static [u8],
}

impl<'a, 'b> Compound<'a, 'b> {
    fn new(w: &'a mut Writer<'b>, close: &'static [u8]) -> Self {
        Compound { w, first: true, close }
    }

    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.w)
    }

    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.comma();
        field_name(self.w.out, key);
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }

    fn close(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// Arrays: sequences, tuples and tuple structs and variants.
macro_rules! element_impls {
    ($($trait:ident $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}
element_impls!(
    SerializeSeq serialize_element,
    SerializeTuple serialize_element,
    SerializeTupleStruct serialize_field,
    SerializeTupleVariant serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(MapKey { out: self.w.out })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// Objects with named fields: structs and struct variants.
macro_rules! field_impls {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            #[inline(always)]
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}
field_impls!(SerializeStruct, SerializeStructVariant);

/// Map keys are strings in JSON: strings as they are, integers, booleans
/// and chars quoted, as `serde_json` does; anything else is an error.
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

impl MapKey<'_> {
    fn integer(self, v: impl itoa::Integer) -> Result<(), Error> {
        self.quoted(itoa::Buffer::new().format(v))
    }

    fn quoted(self, text: &str) -> Result<(), Error> {
        string(self.out, text);
        Ok(())
    }

    fn not_a_key() -> Error {
        Error("map key must be a string, integer, bool or char".into())
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { "true" } else { "false" })
    }
    integers!(integer);
    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.quoted(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.quoted(v)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        self.quoted(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(Self::not_a_key())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Self::not_a_key())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Self::not_a_key())
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Self::not_a_key())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Self::not_a_key())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Self::not_a_key())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct, Error> {
        Err(Self::not_a_key())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Self::not_a_key())
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.quoted(&value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::append;

    fn same<T: Serialize>(value: &T) {
        let mut ours = Vec::new();
        append(&mut ours, value).expect("serializes");
        let theirs = serde_json::to_vec(value).expect("serde_json serializes");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "differs from serde_json"
        );
    }

    #[derive(Serialize)]
    enum Variants {
        Unit,
        Newtype(i32),
        Tuple(u8, String),
        Struct { a: Option<f64>, b: Vec<char> },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Pair(u16, bool);

    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        Thing {
            #[serde(rename = "odd-name")]
            odd: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            gone: Option<u8>,
        },
    }

    #[test]
    fn scalars_match_serde_json() {
        same(&true);
        same(&false);
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            same(&v);
        }
        same(&u64::MAX);
        same(&u128::MAX);
        same(&i128::MIN);
        for v in [
            0.0,
            -0.0,
            1.5,
            1e300,
            1e-300,
            123.456,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            same(&v);
        }
        same(&1.25f32);
        same(&f32::NAN);
        same(&'x');
        same(&'"');
        same(&'\u{1}');
        same(&());
        same(&Unit);
        same(&Option::<u8>::None);
        same(&Some(3u8));
    }

    #[test]
    fn strings_escape_as_serde_json() {
        let mut every_byte = String::new();
        for c in 0u8..0x80 {
            every_byte.push(char::from(c));
        }
        every_byte.push_str("é€😀\u{2028}");
        same(&every_byte);
        same(&"");
        same(&"plain");
        same(&format_args!("{}\t{}", "a\"b", '\\').to_string());
        same(&serde_bytes_like(b"\x00\xff"));
    }

    fn serde_bytes_like(b: &'static [u8]) -> impl Serialize {
        struct Bytes(&'static [u8]);
        impl Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(b)
    }

    #[test]
    fn compounds_match_serde_json() {
        same(&Vec::<u8>::new());
        same(&vec![1u8, 2, 3]);
        same(&(1u8, "two", 3.0f64));
        same(&Pair(7, true));
        same(&[Variants::Unit, Variants::Newtype(-4)]);
        same(&Variants::Tuple(1, "x\ny".into()));
        same(&Variants::Struct {
            a: None,
            b: vec!['a', '\n'],
        });
        same(&Variants::Struct {
            a: Some(2.5),
            b: vec![],
        });
        same(&Tagged::Thing { odd: 1, gone: None });
        same(&Tagged::Thing { odd: 1, gone: Some(2) });
        let mut map = BTreeMap::new();
        map.insert("a\"b", vec![Some(1u8), None]);
        map.insert("", vec![]);
        same(&map);
        let ints: BTreeMap<i32, bool> = [(-1, true), (7, false)].into_iter().collect();
        same(&ints);
        let chars: BTreeMap<char, ()> = [('k', ())].into_iter().collect();
        same(&chars);
        let bools: BTreeMap<bool, u8> = [(true, 1)].into_iter().collect();
        same(&bools);
        let addr: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        same(&addr);
        same(&format_args!("{}\"{}", 1, 2));
    }

    #[test]
    fn keys_json_cannot_have_are_errors() {
        let mut out = Vec::new();
        let map: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        assert!(append(&mut out, &map).is_err());
        assert!(serde_json::to_vec(&map).is_err());
    }

    /// Every event the pipeline makes of the shared captures, in quality
    /// mode (handshakes, flows, stats), serialises to serde_json's bytes.
    #[test]
    fn events_of_real_captures_match_serde_json() {
        use crate::capture::file::CaptureFile;
        use crate::config::Config;
        use crate::event::Event;
        use crate::track::Mode;

        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcaps");
        let entries = std::fs::read_dir(&dir).expect("testdata/pcaps is part of the repository");
        let mut config = Config::default();
        config.capture.mode = Mode::Quality;
        let mut events = Vec::new();
        let mut files = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                continue;
            }
            let Ok(mut file) = CaptureFile::open(&path) else {
                continue;
            };
            files += 1;
            let tagged = crate::pipeline::events_of(config.track_config(), config.interest(), &mut file);
            events.extend(tagged.into_iter().map(|t| t.event));
        }
        assert!(files >= 5, "shared captures found: {files}");
        assert!(events.iter().any(|e| matches!(e, Event::Handshake(_))));
        assert!(events.iter().any(|e| matches!(e, Event::Flow(_))));
        for event in events.iter() {
            same(event);
        }
    }
}
