//! JSON data objects, kept as the client wrote them, and their key structure.
//!
//! sessionData and playerData are passed through verbatim: the bytes a client sent are the
//! bytes other clients receive, so key order, number spelling (`1.000000000001`, integers
//! beyond 2^53) and unicode survive without a JSON number type that could round them.

use std::fmt;
use std::sync::Arc;

use serde::de;
use serde_json::value::RawValue;

use crate::scan::Cursor;

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

/// A JSON object, as the text a client sent. Cloning shares the text: a joiner's list of the
/// members ([`crate::JoinBurst`]) holds their data without copying it.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonObject {
    raw: Arc<str>,
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

    /// Whether `self` and `other` share one text (a clone of the same object).
    pub fn shares_text_with(&self, other: &JsonObject) -> bool {
        Arc::ptr_eq(&self.raw, &other.raw)
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
    keys: Vec<Entry>,
}

impl Shape {
    /// The structure of `object`.
    ///
    /// One pass over the text, with no recursion (an explicit stack holds the objects being
    /// read): O(size) whatever the nesting, and no depth can overflow the call stack.
    pub fn of(object: &JsonObject) -> Shape {
        // The text was validated as a JSON object when it was received.
        build(object.as_str()).unwrap_or_default()
    }

    /// Whether `object` has exactly this structure: the same keys at every level, with objects
    /// where this shape has objects and non-objects where it has non-objects. A repeated key
    /// counts with its last value, as in [`Shape::of`] and JavaScript's `JSON.parse`.
    ///
    /// One pass over the text against this shape, building nothing: O(size) whatever the
    /// nesting, with no recursion.
    pub fn matches(&self, object: &JsonObject) -> bool {
        check(self, object.as_str()).unwrap_or(false)
    }

    /// The index of `key` among this shape's keys.
    fn index(&self, key: &str) -> Option<usize> {
        self.keys
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
    }

    /// Sorts the keys read from one object; a repeated key counts once, with its last value.
    fn from_keys(mut keys: Vec<Entry>) -> Shape {
        keys.reverse();
        // Stable: among equal keys the last occurrence comes first, and is what dedup keeps.
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.dedup_by(|later, earlier| later.0 == earlier.0);
        Shape { keys }
    }
}

impl Drop for Shape {
    /// Without recursion, like the reading: a shape may be as deep as the text it was read
    /// from.
    fn drop(&mut self) {
        let mut nested: Vec<Shape> = Vec::new();
        let mut keys = std::mem::take(&mut self.keys);
        loop {
            nested.extend(keys.drain(..).filter_map(|(_, child)| child));
            let Some(mut next) = nested.pop() else {
                return;
            };
            keys = std::mem::take(&mut next.keys);
        }
    }
}

/// One key of a [`Shape`] and, if its value is an object, that object's shape.
type Entry = (Box<str>, Option<Shape>);

/// [`Shape::of`] on the text of an object; `None` if it is no object.
fn build(text: &str) -> Option<Shape> {
    let mut cursor = Cursor::new(text);
    if !cursor.eat(b'{') {
        return None;
    }
    // The objects being read, outermost first: the key each is the value of in its parent
    // (none for the outermost), and the keys read so far.
    let mut open: Vec<(Option<Box<str>>, Vec<Entry>)> = vec![(None, vec![])];
    loop {
        cursor.skip_ws();
        match cursor.peek()? {
            b'}' => {
                cursor.eat(b'}');
                let (key, keys) = open.pop()?;
                let shape = Shape::from_keys(keys);
                match (open.last_mut(), key) {
                    (None, _) => return Some(shape),
                    (Some((_, parent)), Some(key)) => parent.push((key, Some(shape))),
                    (Some(_), None) => return None,
                }
            }
            b',' => {
                cursor.eat(b',');
            }
            _ => {
                let key: Box<str> = cursor.key()?.into();
                if cursor.eat(b'{') {
                    open.push((Some(key), Vec::new()));
                } else {
                    cursor.skip_value(usize::MAX)?;
                    open.last_mut()?.1.push((key, None));
                }
            }
        }
    }
}

/// [`Shape::matches`] on the text of an object; `None` if it is no object.
fn check(shape: &Shape, text: &str) -> Option<bool> {
    let mut cursor = Cursor::new(text);
    if !cursor.eat(b'{') {
        return None;
    }
    /// An object being read against the shape it must have.
    struct Open<'s> {
        shape: &'s Shape,
        /// Where its keys' slots start in `last`.
        base: usize,
        /// The key it is the value of in its parent (an index into the parent's shape).
        slot: usize,
    }
    // Per expected key of every open object: `Some(matches)` for its last occurrence so far.
    let mut last: Vec<Option<bool>> = vec![None; shape.keys.len()];
    let mut open = vec![Open {
        shape,
        base: 0,
        slot: 0,
    }];
    loop {
        cursor.skip_ws();
        match cursor.peek()? {
            b'}' => {
                cursor.eat(b'}');
                let done = open.pop()?;
                let matches = last[done.base..].iter().all(|m| *m == Some(true));
                last.truncate(done.base);
                match open.last() {
                    None => return Some(matches),
                    Some(parent) => last[parent.base + done.slot] = Some(matches),
                }
            }
            b',' => {
                cursor.eat(b',');
            }
            _ => {
                let key = cursor.key()?;
                let top = open.last()?;
                let Some(index) = top.shape.index(&key) else {
                    if open.len() == 1 {
                        // An unexpected key at the top: nothing later can make up for it.
                        return Some(false);
                    }
                    // This occurrence of the nested object does not match; a later
                    // occurrence of its key in the parent still may.
                    cursor.skip_value(usize::MAX)?;
                    cursor.skip_rest()?;
                    let done = open.pop()?;
                    last.truncate(done.base);
                    let parent = open.last()?;
                    last[parent.base + done.slot] = Some(false);
                    continue;
                };
                let slot = top.base + index;
                match (&top.shape.keys[index].1, cursor.peek() == Some(b'{')) {
                    (Some(child), true) => {
                        cursor.eat(b'{');
                        let base = last.len();
                        last.resize(base + child.keys.len(), None);
                        open.push(Open {
                            shape: child,
                            base,
                            slot: index,
                        });
                    }
                    (expected, is_object) => {
                        cursor.skip_value(usize::MAX)?;
                        last[slot] = Some(expected.is_none() && !is_object);
                    }
                }
            }
        }
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

    #[wasm_bindgen_test(unsupported = test)]
    fn any_depth_is_read_without_recursion() {
        // The recursive reading this replaced overflowed the stack at about 10,000 levels.
        let levels = 100_000;
        let deep = format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
        let deep = obj(&deep);
        let shape = Shape::of(&deep);
        assert!(shape.matches(&deep));
        let other = format!("{}2{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
        assert!(shape.matches(&obj(&other)));
        let shallower = format!(
            "{}2{}",
            r#"{"a":"#.repeat(levels - 1),
            "}".repeat(levels - 1)
        );
        assert!(!shape.matches(&obj(&shallower)));
        assert!(!Shape::of(&obj(&shallower)).matches(&deep));
    }
}
