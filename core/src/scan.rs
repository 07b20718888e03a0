//! A cursor over JSON text that steps over strings and whole values without building
//! anything: one pass, no recursion, no allocation (except to decode a key with escapes).
//!
//! Used where a full parse would cost more than the answer is worth: the key structure of a
//! data object ([`crate::Shape`]), and the `command` of a frame refused before it is parsed
//! ([`crate::command::peek`]). It does not validate: on text that is not JSON it gives some
//! answer or `None`, never a panic.

use std::borrow::Cow;

pub(crate) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    /// The byte at the cursor.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Steps over whitespace, then over `byte` if it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Steps over JSON whitespace.
    pub(crate) fn skip_ws(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.text.len()
    }

    /// At a `"`: steps over the string and returns what is between its quotes, undecoded,
    /// and whether it has escapes.
    fn raw_string(&mut self) -> Option<(&'a str, bool)> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            match bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        // Both ends are at ASCII quotes, so on char boundaries.
        Some((self.text.get(start..i)?, escaped))
    }

    /// At a `"`: steps over the string and returns it decoded (borrowed unless it has
    /// escapes).
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos;
        let (raw, escaped) = self.raw_string()?;
        if !escaped {
            return Some(Cow::Borrowed(raw));
        }
        let quoted = self.text.get(start..self.pos)?;
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    }

    /// After whitespace, a key and its colon: returns the key, decoded, and leaves the cursor
    /// at its value.
    pub(crate) fn key(&mut self) -> Option<Cow<'a, str>> {
        self.skip_ws();
        let key = self.string()?;
        if !self.eat(b':') {
            return None;
        }
        self.skip_ws();
        Some(key)
    }

    /// Steps over one value of any kind. `max_depth`: how deep objects and arrays may nest
    /// in it (the value itself counts as one level); deeper is `None`.
    pub(crate) fn skip_value(&mut self, max_depth: usize) -> Option<()> {
        self.skip_ws();
        let bytes = self.text.as_bytes();
        match *bytes.get(self.pos)? {
            b'"' => self.raw_string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *bytes.get(self.pos)? {
                        b'"' => {
                            self.raw_string()?;
                            continue;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > max_depth {
                                return None;
                            }
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                let start = self.pos;
                while let Some(&b) = bytes.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }

    /// Steps over the rest of an object or array whose opening bracket is behind the cursor.
    pub(crate) fn skip_rest(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let mut depth = 1usize;
        loop {
            match *bytes.get(self.pos)? {
                b'"' => {
                    self.raw_string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn values_are_stepped_over_whole() {
        for (text, rest) in [
            (r#""a\"}" ,1"#, " ,1"),
            (r#"{"a":["}",{"b":"]"}]},2"#, ",2"),
            ("-1.5e3}", "}"),
            ("true]", "]"),
            ("[[[]]] x", " x"),
        ] {
            let mut c = Cursor::new(text);
            assert_eq!(c.skip_value(usize::MAX), Some(()), "{text}");
            assert_eq!(&text[c.pos..], rest, "{text}");
        }
        assert_eq!(Cursor::new("[[[]]]").skip_value(2), None);
        assert_eq!(Cursor::new("[[[]]]").skip_value(3), Some(()));
        for broken in ["", "\"abc", "[1,2", "{\"a\":\"}", ","] {
            assert_eq!(Cursor::new(broken).skip_value(usize::MAX), None, "{broken}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_are_decoded() {
        let mut c = Cursor::new(r#" "a\u0062" : 1"#);
        assert_eq!(c.key().as_deref(), Some("ab"));
        let mut c = Cursor::new(r#""plain":1"#);
        assert!(matches!(c.key(), Some(Cow::Borrowed("plain"))));
        assert_eq!(Cursor::new(r#""a" 1"#).key(), None);
    }
}
