//! JSON as the original's clients see it: Go-style output (2-space indentation, `<`, `>`
//! and `&` escaped as `\u003c`, `\u003e`, `\u0026`) and lenient input (keys matched exactly,
//! then case-insensitively; `null` leaves a field at its default; unknown keys ignored).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::{Map, Value};
use std::io;

/// Serializes `value` the way the original does: indented, HTML-sensitive characters escaped.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Room for a whole metadata record (about 1.3 KiB indented), so it is written without
    // growing the buffer.
    let mut out = Vec::with_capacity(2048);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter::default());
    // Serializing plain data structures into a Vec cannot fail.
    if value.serialize(&mut serializer).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

/// Indented output (two spaces, as serde_json's `PrettyFormatter` and Go's `MarshalIndent`)
/// that also escapes `<`, `>` and `&` like Go's encoder. Each line break and its indentation
/// is one write, where the pretty formatter writes each level separately.
#[derive(Default)]
struct GoFormatter {
    level: usize,
    has_value: bool,
}

/// A comma, a line break and the indentation of the deepest level written at once.
const BREAK: &[u8] = b",\n                                                                ";
/// Levels of indentation [`BREAK`] holds.
const BREAK_LEVELS: usize = (BREAK.len() - 2) / 2;

impl GoFormatter {
    /// Ends the line (after a comma unless `first`) and indents the next one to the level.
    fn line_break<W: ?Sized + io::Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        let start = usize::from(first);
        if self.level <= BREAK_LEVELS {
            return w.write_all(&BREAK[start..2 + 2 * self.level]);
        }
        w.write_all(&BREAK[start..2])?;
        (0..self.level).try_for_each(|_| w.write_all(b"  "))
    }

    fn open<W: ?Sized + io::Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + io::Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.line_break(w, true)?;
        }
        w.write_all(bracket)
    }
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        // Every string of every answer passes here: a vectorized search for the three ASCII
        // characters (they never occur inside a character of several bytes).
        let bytes = fragment.as_bytes();
        let mut written = 0;
        for index in memchr::memchr3_iter(b'<', b'>', b'&', bytes) {
            let escaped: &[u8] = match bytes[index] {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                _ => b"\\u0026",
            };
            writer.write_all(&bytes[written..index])?;
            writer.write_all(escaped)?;
            written = index + 1;
        }
        writer.write_all(&bytes[written..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line_break(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line_break(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Describes which wire keys a JSON object may carry, and the shapes nested under some of them,
/// so that lenient decoding can fold key case at every level.
pub struct Shape {
    pub fields: &'static [&'static str],
    pub nested: &'static [(&'static str, Nested)],
}

/// How a nested field is shaped.
pub enum Nested {
    Object(&'static Shape),
    ArrayOf(&'static Shape),
}

/// Decodes `bytes` into `T` with the original's lenient rules, after folding keys to `shape`.
pub fn from_lenient<T: DeserializeOwned>(bytes: &[u8], shape: &Shape) -> Result<T, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(bytes)?;
    fold(&mut value, shape);
    serde_json::from_value(value)
}

/// Applies the lenient key rules to an already parsed value.
pub fn fold(value: &mut Value, shape: &Shape) {
    let Value::Object(map) = value else { return };
    let taken = std::mem::take(map);
    let mut folded = Map::with_capacity(taken.len());
    for (key, field_value) in taken {
        let canonical = canonical_key(&key, shape.fields);
        match canonical {
            // Go leaves a field at its zero value for `null`; dropping it lets serde default it.
            Some(_) if field_value.is_null() => {
                if let Some(name) = canonical {
                    folded.remove(name);
                }
            }
            Some(name) => {
                folded.insert(name.to_string(), field_value);
            }
            None => {}
        }
    }
    for (name, nested) in shape.nested {
        if let Some(inner) = folded.get_mut(*name) {
            match nested {
                Nested::Object(inner_shape) => fold(inner, inner_shape),
                Nested::ArrayOf(inner_shape) => {
                    if let Value::Array(items) = inner {
                        items.iter_mut().for_each(|item| fold(item, inner_shape));
                    }
                }
            }
        }
    }
    *map = folded;
}

fn canonical_key(key: &str, fields: &'static [&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(key)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    static INNER: Shape = Shape {
        fields: &["name"],
        nested: &[],
    };
    static OUTER: Shape = Shape {
        fields: &["objectID", "items"],
        nested: &[("items", Nested::ArrayOf(&INNER))],
    };

    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(default)]
    struct Outer {
        #[serde(rename = "objectID")]
        object_id: String,
        items: Vec<Inner>,
    }
    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(default)]
    struct Inner {
        name: String,
    }

    #[test]
    fn folds_case_drops_null_and_ignores_unknown() {
        let parsed: Outer = from_lenient(br#"{"OBJECTID":"a","unknown":1,"Items":[{"NAME":"x"}]}"#, &OUTER).unwrap();
        assert_eq!(parsed.object_id, "a");
        assert_eq!(parsed.items[0].name, "x");
        let parsed: Outer = from_lenient(br#"{"objectID":null}"#, &OUTER).unwrap();
        assert_eq!(parsed.object_id, "");
    }

    #[test]
    fn later_duplicate_wins_and_wrong_type_fails() {
        let parsed: Outer = from_lenient(br#"{"objectID":"a","objectid":"b"}"#, &OUTER).unwrap();
        assert_eq!(parsed.object_id, "b");
        assert!(from_lenient::<Outer>(br#"{"objectID":5}"#, &OUTER).is_err());
    }

    #[test]
    fn escapes_html_characters_like_go() {
        let out = String::from_utf8(to_go_json(&serde_json::json!({"d": "<a>&"}))).unwrap();
        assert_eq!(out, "{\n  \"d\": \"\\u003ca\\u003e\\u0026\"\n}");
        // Between, around and beside characters of several bytes, and next to the escapes
        // serde_json makes itself.
        let out = String::from_utf8(to_go_json(&serde_json::json!({"é<k>": "ü&\"x>\n<€"}))).unwrap();
        assert_eq!(out, "{\n  \"é\\u003ck\\u003e\": \"ü\\u0026\\\"x\\u003e\\n\\u003c€\"\n}");
    }

    /// Apart from the escapes, the layout is serde_json's pretty one: nested and empty
    /// objects and arrays, and nesting deeper than one write of indentation covers.
    #[test]
    fn indents_like_the_pretty_formatter() {
        let mut deep = serde_json::json!({"leaf": [1, {"x": []}]});
        for level in 0..40 {
            deep = serde_json::json!({ format!("l{level}"): deep, "n": level, "a": [], "o": {} });
        }
        let value = serde_json::json!({"a": [1, "two", {"b": null}, [[]]], "c": {}, "d": deep});
        let expected = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(
            String::from_utf8(to_go_json(&value)).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
