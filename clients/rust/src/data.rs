//! [`Data`]: a sessionData or playerData object, kept as the exact JSON text the server sent.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

/// A JSON value as the server sent it: the exact text (keys in order, numbers as written),
/// parsed only when asked. Cloning is cheap (the text is shared).
///
/// Read it as `serde_json::Value` with [`Data::to_value`] or as your own type with
/// [`Data::parse`]; make one from any `Serialize` value with [`Data::new`].
#[derive(Clone)]
pub struct Data(Arc<RawValue>);

impl Data {
    /// `value` as JSON (compact). Fails only if `value`'s `Serialize` fails (a map with
    /// non-string keys, say).
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Result<Data, serde_json::Error> {
        Ok(Data(Arc::from(serde_json::value::to_raw_value(value)?)))
    }

    /// JSON text checked to be JSON, kept as it is (whitespace included).
    pub fn from_json(text: &str) -> Result<Data, serde_json::Error> {
        Ok(Data(Arc::from(RawValue::from_string(text.to_owned())?)))
    }

    /// `{}`, what a request without data sends.
    pub fn empty_object() -> Data {
        Data::from_json("{}").expect("{} is JSON")
    }

    pub(crate) fn from_raw(raw: Box<RawValue>) -> Data {
        Data(Arc::from(raw))
    }

    /// The JSON text, exactly as received.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The data as your own type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The data as a `serde_json::Value` (keys stay in order). Integers beyond 64 bits and
    /// numbers beyond f64 lose their spelling there; [`Data::as_str`] keeps it.
    pub fn to_value(&self) -> serde_json::Value {
        // The text came through serde_json's own parser, so it parses again.
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Data {
    /// The same text (the server passes data through verbatim, so an echo is equal).
    fn eq(&self, other: &Data) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Data {}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl From<serde_json::Value> for Data {
    fn from(value: serde_json::Value) -> Data {
        Data::new(&value).expect("a serde_json::Value always serializes")
    }
}
