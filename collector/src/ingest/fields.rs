//! A handshake's fields read straight from its JSON, without building a
//! JSON tree: most events are handshakes, and a tree of ~40 fields (a
//! string key and often a string value each) cost more than storing the
//! event (docs/benchmarks.md).
//!
//! Values are taken as loosely as `serde_json::Value` would give them:
//! whatever the type of a field, reading it never fails; a field of the
//! wrong type reads as absent, exactly as `Value::as_str` and friends
//! answer. The checks of `super::check` hold on these as on a tree
//! (tested: `fast_and_tree_checks_agree`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One JSON value, as much of it as the checks and columns read.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Loose {
    #[default]
    Null,
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Negative(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    List,
    Object,
}

impl Loose {
    /// A tree's value read the same way.
    pub fn of(v: &serde_json::Value) -> Loose {
        use serde_json::Value;
        match v {
            Value::Null => Loose::Null,
            Value::Bool(b) => Loose::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Loose::Unsigned(u),
                (None, Some(i)) => Loose::Negative(i),
                _ => Loose::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Loose::Text(s.clone()),
            Value::Array(_) => Loose::List,
            Value::Object(_) => Loose::Object,
        }
    }

    /// As `Value::as_u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Loose::Unsigned(n) => Some(n),
            _ => None,
        }
    }

    /// As `Value::as_i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Loose::Unsigned(n) => i64::try_from(n).ok(),
            Loose::Negative(n) => Some(n),
            _ => None,
        }
    }

    /// As `Value::as_f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Loose::Unsigned(n) => Some(n as f64),
            Loose::Negative(n) => Some(n as f64),
            Loose::Float(f) => Some(f),
            _ => None,
        }
    }

    /// As `Value::as_str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Text(s) => Some(s),
            _ => None,
        }
    }

    /// As `Value::is_array`.
    pub fn is_list(&self) -> bool {
        matches!(self, Loose::List)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(if v < 0 {
            Loose::Negative(v)
        } else {
            Loose::Unsigned(v as u64)
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::Unsigned(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Text(v))
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Object)
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

/// The string-valued tags of an event (others read as absent, as
/// `Value::as_str` would; tags that are not an object read as none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    /// The value of `key`; the last one if the object repeats it (as a
    /// JSON tree keeps the last).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

struct TagsVisitor;

impl<'de> Visitor<'de> for TagsVisitor {
    type Value = Tags;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
        let mut tags = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Loose::Text(value) = map.next_value::<Loose>()? {
                tags.push((key, value));
            }
        }
        Ok(Tags(tags))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Tags::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tags, E> {
        Ok(Tags::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Tags, E> {
        Ok(Tags::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Tags, E> {
        Ok(Tags::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Tags, E> {
        Ok(Tags::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Tags, E> {
        Ok(Tags::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Tags, E> {
        Ok(Tags::default())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tags, D::Error> {
        d.deserialize_any(TagsVisitor)
    }
}

/// What the collector checks and stores of a handshake event.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct Handshake {
    pub kind: Loose,
    pub seq: Loose,
    pub ts_us: Loose,
    pub id: Loose,
    pub client_ip: Loose,
    pub client_port: Loose,
    pub server_ip: Loose,
    pub server_port: Loose,
    pub direction: Loose,
    pub outcome: Loose,
    pub rtt_last_syn_us: Loose,
    pub syn_count: Loose,
    pub tags: Tags,
}

impl Handshake {
    /// The field named `name`, if it is one of the checked ones (absent
    /// fields read as `Null`, as `Value::get` answers `None`).
    pub fn field(&self, name: &str) -> Option<&Loose> {
        let v = match name {
            "kind" => &self.kind,
            "seq" => &self.seq,
            "ts_us" => &self.ts_us,
            "id" => &self.id,
            "client_ip" => &self.client_ip,
            "client_port" => &self.client_port,
            "server_ip" => &self.server_ip,
            "server_port" => &self.server_port,
            "direction" => &self.direction,
            "outcome" => &self.outcome,
            "rtt_last_syn_us" => &self.rtt_last_syn_us,
            "syn_count" => &self.syn_count,
            _ => return None,
        };
        Some(v)
    }
}
