//! JSON data objects, kept as the client wrote them, and their key structure.
//!
//! sessionData and playerData are passed through verbatim: the bytes a client sent are the
//! bytes other clients receive, so key order, number spelling (`1.000000000001`, integers
//! beyond 2^53) and unicode survive without a JSON number type that could round them.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Which names a session's data fields have on the wire.
///
/// The original server's code reads and writes `session` / `player`; its README says
/// `sessionData` / `playerData`. Both are accepted on input; a session answers in the
/// spelling its creator used, to every member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Spelling {
    /// `session` and `player`, as the original server's code (the default).
    #[default]
    Short,
    /// `sessionData` and `playerData`, as the original server's README.
    Long,
}

impl Spelling {
    /// The name of the sessionData field.
    pub const fn session_field(self) -> &'static str {
        match self {
            Spelling::Short => "session",
            Spelling::Long => "sessionData",
        }
    }

    /// The name of the playerData field.
    pub const fn player_field(self) -> &'static str {
        match self {
            Spelling::Short => "player",
            Spelling::Long => "playerData",
        }
    }
}

/// A JSON object, as the text a client sent.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonObject {
    raw: Box<str>,
}

impl JsonObject {
    /// `{}`.
    pub fn empty() -> Self {
        JsonObject { raw: "{}".into() }
    }

    /// Takes an already validated JSON value if it is an object.
    pub(crate) fn from_raw(value: &RawValue) -> Option<Self> {
        let text = value.get().trim();
        text.starts_with('{')
            .then(|| JsonObject { raw: text.into() })
    }

    /// Parses `text`, which must be one JSON object.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let value: &RawValue = serde_json::from_str(text)?;
        JsonObject::from_raw(value).ok_or_else(|| de::Error::custom("not a JSON object"))
    }

    /// The object's JSON text, exactly as received.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The key structure of a JSON object: its set of keys and, for each key whose value is an
/// object, that object's structure. Key order and the types of non-object values are not part
/// of it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    /// Sorted by key, no key twice. `None`: the value is not an object.
    keys: Vec<(Box<str>, Option<Shape>)>,
}

impl Shape {
    /// The structure of `object`.
    pub fn of(object: &JsonObject) -> Shape {
        let mut de = serde_json::Deserializer::from_str(object.as_str());
        // The text was validated as a JSON object when it was received.
        ShapeBuilder
            .deserialize(&mut de)
            .unwrap_or_else(|_| Shape::default())
    }

    /// Whether `object` has exactly this structure: the same keys at every level, with objects
    /// where this shape has objects and non-objects where it has non-objects.
    pub fn matches(&self, object: &JsonObject) -> bool {
        let mut de = serde_json::Deserializer::from_str(object.as_str());
        ShapeCheck(self).deserialize(&mut de).is_ok()
    }
}

/// Reads one value inside an object as its raw text; an object gives its nested text.
///
/// Values are taken raw (rather than visited) so that the shape does not depend on
/// serde_json features another crate in the build may switch on (`arbitrary_precision`
/// visits numbers as maps).
fn nested_object(value: &RawValue) -> Option<&str> {
    let text = value.get().trim();
    text.starts_with('{').then_some(text)
}

/// Builds a [`Shape`] from a JSON object.
struct ShapeBuilder;

impl<'de> DeserializeSeed<'de> for ShapeBuilder {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ShapeBuilder {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut keys: Vec<(Box<str>, Option<Shape>)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: &RawValue = map.next_value()?;
            let child = match nested_object(value) {
                Some(text) => Some(
                    ShapeBuilder
                        .deserialize(&mut serde_json::Deserializer::from_str(text))
                        .map_err(de::Error::custom)?,
                ),
                None => None,
            };
            keys.push((key.into(), child));
        }
        // A repeated key counts once, with its last value, as JavaScript's JSON.parse reads it.
        keys.reverse();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.dedup_by(|later, earlier| later.0 == earlier.0);
        Ok(Shape { keys })
    }
}

/// Checks an object against a shape while reading it, without building a second shape.
/// Any error means "does not match"; the text itself was validated on receipt.
struct ShapeCheck<'s>(&'s Shape);

impl<'de> DeserializeSeed<'de> for ShapeCheck<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ShapeCheck<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of the session's playerData structure")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let expected = &self.0.keys;
        // Per expected key: `Some(matches)` for its last occurrence. A repeated key counts with
        // its last value, as in `Shape::of` and JavaScript's JSON.parse.
        let mut last: Vec<Option<bool>> = vec![None; expected.len()];
        while let Some(index) = map.next_key_seed(KeyIndex(expected))? {
            let value: &RawValue = map.next_value()?;
            let matches = match (&expected[index].1, nested_object(value)) {
                (None, None) => true,
                (Some(child), Some(text)) => ShapeCheck(child)
                    .deserialize(&mut serde_json::Deserializer::from_str(text))
                    .is_ok(),
                _ => false,
            };
            last[index] = Some(matches);
        }
        if last.iter().all(|m| *m == Some(true)) {
            Ok(())
        } else {
            Err(de::Error::custom("a key is missing or of another kind"))
        }
    }
}

/// Reads a key and finds it among the expected keys; an unexpected key is an error.
struct KeyIndex<'s>(&'s [(Box<str>, Option<Shape>)]);

impl<'de> DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key of the session's playerData")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .map_err(|_| E::custom("unexpected key"))
    }
}

/// A session's default playerData, with its structure worked out once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayerFormat {
    default: JsonObject,
    shape: Shape,
}

impl PlayerFormat {
    /// The format whose default is `default`.
    pub fn new(default: JsonObject) -> Self {
        let shape = Shape::of(&default);
        PlayerFormat { default, shape }
    }

    /// The default playerData every member starts with.
    pub fn default_data(&self) -> &JsonObject {
        &self.default
    }

    /// Whether `data` may become a member's playerData.
    pub fn accepts(&self, data: &JsonObject) -> bool {
        self.shape.matches(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn obj(text: &str) -> JsonObject {
        JsonObject::parse(text).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn repeated_keys_count_once_with_the_last_value() {
        let shape = Shape::of(&obj(r#"{"a":{"x":1},"a":2}"#));
        assert!(shape.matches(&obj(r#"{"a":3}"#)));
        assert!(!shape.matches(&obj(r#"{"a":{"x":1}}"#)));
        // The object itself matches its own shape, and so does any object whose last
        // occurrence of each key has the right kind.
        assert!(shape.matches(&obj(r#"{"a":{"x":1},"a":2}"#)));
        assert!(!shape.matches(&obj(r#"{"a":2,"a":{"x":1}}"#)));
    }
}
