//! The one-pass key-structure check against the implementation it replaced, kept here as the
//! oracle: it re-parsed each nested object from its raw text, one level at a time.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use sessionserver_core::{JsonObject, PlayerFormat, Shape};

/// The previous implementation of `Shape::of` and `Shape::matches`, verbatim but for names.
mod oracle {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    #[derive(Clone, Debug, PartialEq, Eq, Default)]
    pub struct OldShape {
        keys: Vec<(Box<str>, Option<OldShape>)>,
    }

    impl OldShape {
        pub fn of(object: &str) -> OldShape {
            let mut de = serde_json::Deserializer::from_str(object);
            ShapeBuilder
                .deserialize(&mut de)
                .unwrap_or_else(|_| OldShape::default())
        }

        pub fn matches(&self, object: &str) -> bool {
            let mut de = serde_json::Deserializer::from_str(object);
            ShapeCheck(self).deserialize(&mut de).is_ok()
        }
    }

    fn nested_object(value: &RawValue) -> Option<&str> {
        let text = value.get().trim();
        text.starts_with('{').then_some(text)
    }

    struct ShapeBuilder;

    impl<'de> DeserializeSeed<'de> for ShapeBuilder {
        type Value = OldShape;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<OldShape, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for ShapeBuilder {
        type Value = OldShape;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OldShape, A::Error> {
            let mut keys: Vec<(Box<str>, Option<OldShape>)> = Vec::new();
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
            keys.reverse();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            keys.dedup_by(|later, earlier| later.0 == earlier.0);
            Ok(OldShape { keys })
        }
    }

    struct ShapeCheck<'s>(&'s OldShape);

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

    struct KeyIndex<'s>(&'s [(Box<str>, Option<OldShape>)]);

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
}

use oracle::OldShape;

/// A JSON value to write out, with the ways of writing it that the check must see through.
#[derive(Clone, Debug)]
enum Tree {
    Object(Vec<(Key, Tree)>),
    Array(Vec<Tree>),
    /// A scalar, as written.
    Scalar(&'static str),
}

/// A key from a small set, so that objects share and repeat keys; `escaped` writes its first
/// letter as a `\u` escape (the same key to JSON).
#[derive(Clone, Debug)]
struct Key {
    name: &'static str,
    escaped: bool,
}

const KEYS: [&str; 5] = ["a", "b", "ab", "é", "}"];
const SCALARS: [&str; 10] = [
    "0",
    "-1.5e3",
    "true",
    "null",
    r#""""#,
    r#""x""#,
    r#""{\"a\":1}""#,
    r#""\\""#,
    r#""[{""#,
    r#""\u00e9\n""#,
];
const SPACES: [&str; 4] = ["", " ", "\n\t", "  "];

fn key() -> impl Strategy<Value = Key> {
    (0..KEYS.len(), any::<bool>()).prop_map(|(i, escaped)| Key {
        name: KEYS[i],
        escaped,
    })
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = (0..SCALARS.len()).prop_map(|i| Tree::Scalar(SCALARS[i]));
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec((key(), inner.clone()), 0..4).prop_map(Tree::Object),
            prop::collection::vec(inner, 0..3).prop_map(Tree::Array),
        ]
    })
}

fn object() -> impl Strategy<Value = Tree> {
    prop::collection::vec((key(), tree()), 0..5).prop_map(Tree::Object)
}

fn write(tree: &Tree, space: &mut impl Iterator<Item = &'static str>, out: &mut String) {
    match tree {
        Tree::Scalar(s) => out.push_str(s),
        Tree::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(space.next().unwrap());
                write(item, space, out);
            }
            out.push(']');
        }
        Tree::Object(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(space.next().unwrap());
                let mut chars = key.name.chars();
                let first = chars.next().unwrap();
                out.push('"');
                if key.escaped {
                    out.push_str(&format!("\\u{:04x}", first as u32));
                } else if first == '"' || first == '\\' {
                    out.push('\\');
                    out.push(first);
                } else {
                    out.push(first);
                }
                out.push_str(chars.as_str());
                out.push('"');
                out.push_str(space.next().unwrap());
                out.push(':');
                out.push_str(space.next().unwrap());
                write(value, space, out);
            }
            out.push_str(space.next().unwrap());
            out.push('}');
        }
    }
}

fn text(tree: &Tree, spaces: &[usize]) -> String {
    let mut space = spaces.iter().cycle().map(|i| SPACES[*i % SPACES.len()]);
    let mut out = String::new();
    write(tree, &mut space, &mut out);
    JsonObject::parse(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    out
}

/// A variant of `tree` that often keeps its structure: scalars and arrays swapped for others,
/// and sometimes a key dropped, an object turned into a value or a value into an object.
fn variant(tree: &Tree, choices: &mut impl Iterator<Item = u8>) -> Tree {
    fn next(choices: &mut impl Iterator<Item = u8>) -> u8 {
        choices.next().unwrap()
    }
    match tree {
        Tree::Object(entries) => {
            let mut out = Vec::new();
            for (key, value) in entries {
                match next(choices) % 16 {
                    0 => {}
                    1 => out.push((key.clone(), Tree::Scalar("1"))),
                    2 => out.push((key.clone(), Tree::Object(vec![]))),
                    _ => out.push((key.clone(), variant(value, choices))),
                }
            }
            if next(choices) % 2 == 0 {
                out.reverse();
            }
            Tree::Object(out)
        }
        Tree::Array(_) | Tree::Scalar(_) => match next(choices) % 3 {
            0 => Tree::Scalar(SCALARS[usize::from(next(choices)) % SCALARS.len()]),
            1 => Tree::Array(vec![Tree::Object(vec![])]),
            _ => tree.clone(),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_one_pass_check_agrees_with_the_old_one(
        a in object(),
        b in object(),
        choices in prop::collection::vec(any::<u8>(), 64),
        spaces in prop::collection::vec(0..SPACES.len(), 1..8),
    ) {
        let similar = variant(&a, &mut choices.iter().copied().cycle());
        let a = text(&a, &spaces);
        let b = text(&b, &spaces);
        let similar = text(&similar, &spaces);
        let (na, old_a) = (Shape::of(&JsonObject::parse(&a).unwrap()), OldShape::of(&a));
        for other in [&a, &b, &similar] {
            let parsed = JsonObject::parse(other).unwrap();
            prop_assert_eq!(na.matches(&parsed), old_a.matches(other), "{} against {}", other, a);
            prop_assert_eq!(
                Shape::of(&parsed) == na,
                OldShape::of(other) == old_a,
                "shapes of {} and {}", other, a
            );
        }
        // Also through the API a session uses.
        let format = PlayerFormat::new(JsonObject::parse(&a).unwrap());
        prop_assert_eq!(
            format.accepts(&JsonObject::parse(&similar).unwrap()),
            old_a.matches(&similar)
        );
    }
}

/// Cases the property test might take long to find.
#[test]
fn repeated_and_nested_keys_agree_with_the_old_check() {
    let cases = [
        (r#"{"a":{"x":1}}"#, r#"{"a":{"y":1},"a":{"x":2}}"#),
        (r#"{"a":{"x":1}}"#, r#"{"a":{"x":2},"a":{"y":1}}"#),
        (
            r#"{"a":{"x":{"q":1}}}"#,
            r#"{"a":{"x":{"q":[{"z":1}]},"zz":{}}}"#,
        ),
        (r#"{"a":{"x":{"q":1}}}"#, r#"{"a":{"x":{"q":"}"}}}"#),
        (r#"{"a":{"b":{}}}"#, r#"{"a":{"b":{}},"a":{"b":1}}"#),
        (r#"{"a":1,"a":{}}"#, r#"{"a":{}}"#),
        (r#"{"\u0061":{}}"#, r#"{"a":{}}"#),
        (r#"{}"#, r#"{}"#),
        (r#"{}"#, r#"{"a":1}"#),
        (r#"{"a":1}"#, r#"{}"#),
    ];
    for (default, data) in cases {
        let new = Shape::of(&JsonObject::parse(default).unwrap());
        let old = OldShape::of(default);
        assert_eq!(
            new.matches(&JsonObject::parse(data).unwrap()),
            old.matches(data),
            "{data} against {default}"
        );
    }
}

/// A flat object and a deeply nested one of about 65 KB each.
fn flat_and_deep() -> (String, String) {
    let flat = format!(
        "{{{}}}",
        (0..5000)
            .map(|i| format!(r#""k{i:04}":{i}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    // 60 levels, each with some keys of its own before the next level.
    let mut deep = String::from("{}");
    for level in 0..60 {
        let keys: String = (0..122).map(|i| format!(r#""k{i:02}":{level},"#)).collect();
        deep = format!(r#"{{{keys}"next":{deep}}}"#);
    }
    (flat, deep)
}

/// `cargo test --release -p sessionserver-core --test shape -- --ignored --nocapture`:
/// the time of one check of a 65 KB playerData, flat and 60 levels deep, old and new.
#[test]
#[ignore = "a measurement, not a test"]
fn measure() {
    use std::time::Instant;
    let (flat, deep) = flat_and_deep();
    for (name, text) in [("flat", &flat), ("deep", &deep)] {
        let object = JsonObject::parse(text).unwrap();
        let new = Shape::of(&object);
        let old = OldShape::of(text);
        assert!(new.matches(&object) && old.matches(text));
        let rounds = 200;
        let t = Instant::now();
        for _ in 0..rounds {
            assert!(std::hint::black_box(&new).matches(&object));
        }
        let new_check = t.elapsed() / rounds;
        let t = Instant::now();
        for _ in 0..rounds {
            assert!(std::hint::black_box(&old).matches(text));
        }
        let old_check = t.elapsed() / rounds;
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(Shape::of(&object));
        }
        let new_of = t.elapsed() / rounds;
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(OldShape::of(text));
        }
        let old_of = t.elapsed() / rounds;
        println!(
            "{name} ({} bytes): matches old {old_check:?} new {new_check:?}; \
             Shape::of old {old_of:?} new {new_of:?}",
            text.len()
        );
    }
}
