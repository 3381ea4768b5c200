//! The `--json` output: one JSON object per line for each record, or a marker for each
//! control record; for `.snapshot` and `.txnindex` files named on the command line, one
//! per entry.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::ser::{CharEscape, Formatter};
use streamlog::format::{ControlRecord, Header, Record};

use super::control_type_name;
use super::txn_files::{AbortedTxn, SnapshotEntry};

/// A record: `{"offset":..,"timestamp":..,"key":..,"value":..,"headers":{..}}`.
#[derive(Serialize)]
struct RecordLine<'a> {
    offset: i64,
    timestamp: i64,
    key: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
    headers: Headers<'a>,
}

/// A record's headers as one object, in their order, a repeated key repeated (a
/// `serde_json::Map` would keep only one of them).
struct Headers<'a>(&'a [Header]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for h in self.0 {
            map.serialize_entry(&h.key, &lossy(h.value.as_deref()))?;
        }
        map.end()
    }
}

/// A control record, marked rather than shown as a key and a value:
/// `{"offset":..,"timestamp":..,"control":"COMMIT","coordinatorEpoch":3}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlLine {
    offset: i64,
    timestamp: i64,
    control: String,
    coordinator_epoch: Option<i32>,
}

/// Bytes as a string (invalid UTF-8 becomes U+FFFD), or `None` for `null`.
fn lossy(bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
    bytes.map(String::from_utf8_lossy)
}

/// serde_json's compact format, except that it escapes every control character as
/// `\u00XX` (serde_json writes five of them as `\n`, `\t`, ...), as this output always has.
struct UnicodeEscapes;

impl Formatter for UnicodeEscapes {
    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let control = match char_escape {
            CharEscape::Quote => return writer.write_all(b"\\\""),
            CharEscape::ReverseSolidus => return writer.write_all(b"\\\\"),
            CharEscape::Solidus => return writer.write_all(b"\\/"),
            CharEscape::Backspace => 0x08,
            CharEscape::Tab => b'\t',
            CharEscape::LineFeed => b'\n',
            CharEscape::FormFeed => 0x0c,
            CharEscape::CarriageReturn => b'\r',
            CharEscape::AsciiControl(byte) => byte,
        };
        write!(writer, "\\u{control:04x}")
    }
}

/// Writes `value` as one line of JSON.
fn write_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut *out,
        UnicodeEscapes,
    ))?;
    out.write_all(b"\n")
}

/// Writes one record as a JSON line.
pub fn write_record(out: &mut impl Write, r: &Record) -> io::Result<()> {
    write_line(
        out,
        &RecordLine {
            offset: r.offset,
            timestamp: r.timestamp,
            key: lossy(r.key.as_deref()),
            value: lossy(r.value.as_deref()),
            headers: Headers(&r.headers),
        },
    )
}

/// Writes a control record as a JSON line: a marker, not a record with a key and value.
pub fn write_control(out: &mut impl Write, r: &Record, c: ControlRecord) -> io::Result<()> {
    write_line(
        out,
        &ControlLine {
            offset: r.offset,
            timestamp: r.timestamp,
            control: control_type_name(c.kind),
            coordinator_epoch: c.coordinator_epoch,
        },
    )
}

/// A `.snapshot` entry (with `--json`, for a snapshot file named on the command line):
/// `{"producerId":..,"producerEpoch":..,"lastSequence":..,"lastOffset":..,
/// "offsetDelta":..,"timestamp":..,"coordinatorEpoch":..,"currentTxnFirstOffset":..}`.
pub fn write_snapshot_entry(out: &mut impl Write, e: &SnapshotEntry) -> io::Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line {
        producer_id: i64,
        producer_epoch: i16,
        last_sequence: i32,
        last_offset: i64,
        offset_delta: i32,
        timestamp: i64,
        coordinator_epoch: i32,
        current_txn_first_offset: i64,
    }
    write_line(
        out,
        &Line {
            producer_id: e.producer_id,
            producer_epoch: e.producer_epoch,
            last_sequence: e.last_sequence,
            last_offset: e.last_offset,
            offset_delta: e.offset_delta,
            timestamp: e.timestamp,
            coordinator_epoch: e.coordinator_epoch,
            current_txn_first_offset: e.current_txn_first_offset,
        },
    )
}

/// A `.txnindex` entry (with `--json`, for a transaction index named on the command
/// line): `{"producerId":..,"firstOffset":..,"lastOffset":..,"lastStableOffset":..}`.
pub fn write_aborted_txn(out: &mut impl Write, e: &AbortedTxn) -> io::Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line {
        producer_id: i64,
        first_offset: i64,
        last_offset: i64,
        last_stable_offset: i64,
    }
    write_line(
        out,
        &Line {
            producer_id: e.producer_id,
            first_offset: e.first_offset,
            last_offset: e.last_offset,
            last_stable_offset: e.last_stable_offset,
        },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use streamlog::format::{BatchBuilder, Compression, Header};
    use streamlog::log::{Log, LogConfig};

    use super::write_line;
    use crate::dump::testing::{T, dump, field, fields, parse_json};

    #[test]
    fn json_output_escapes_strings_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("json-0");
        let value = "line1\nline2 \"quoted\" back\\slash\ttab \u{1}\u{1f} é ✓";
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let mut b = BatchBuilder::new().compression(Compression::Lz4);
        let headers = [
            Header::new("trace", "abc"),
            Header {
                key: "null-valued".into(),
                value: None,
            },
            Header::new("quote\"key", "x\ny"),
        ];
        b.push(T, Some(b"k\"1"), Some(value.as_bytes()), &headers)
            .unwrap();
        b.push(T + 1, None, None, &[]).unwrap();
        b.push(T + 2, Some(&[0xff, b'a']), Some(b""), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.close().unwrap();

        let o = dump(&["--json"], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        assert_eq!(o.summary.records, 3);
        let lines: Vec<&str> = o.out.lines().collect();
        assert_eq!(lines.len(), 3, "{}", o.out);
        assert_eq!(
            lines[0],
            r#"{"offset":0,"timestamp":1700000000000,"key":"k\"1","value":"line1\u000aline2 \"quoted\" back\\slash\u0009tab \u0001\u001f é ✓","headers":{"trace":"abc","null-valued":null,"quote\"key":"x\u000ay"}}"#
        );
        assert_eq!(
            lines[1],
            r#"{"offset":1,"timestamp":1700000000001,"key":null,"value":null,"headers":{}}"#
        );

        let first = parse_json(lines[0]);
        assert_eq!(field(&first, "offset"), &json!(0));
        assert_eq!(field(&first, "timestamp"), &json!(T));
        assert_eq!(field(&first, "key").as_str(), Some("k\"1"));
        assert_eq!(field(&first, "value").as_str(), Some(value));
        assert_eq!(
            fields(field(&first, "headers")),
            [
                ("trace", &json!("abc")),
                ("null-valued", &Value::Null),
                ("quote\"key", &json!("x\ny")),
            ]
        );
        let second = parse_json(lines[1]);
        assert_eq!(field(&second, "key"), &Value::Null);
        assert_eq!(field(&second, "value"), &Value::Null);
        let third = parse_json(lines[2]);
        assert_eq!(
            field(&third, "key").as_str(),
            Some("\u{fffd}a"),
            "invalid UTF-8 is replaced"
        );
        assert_eq!(field(&third, "value").as_str(), Some(""));
    }

    #[test]
    fn json_strings_escape_every_control_character() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut out = Vec::new();
        write_line(&mut out, &all).unwrap();
        let line = String::from_utf8(out).unwrap();
        let text = line.strip_suffix('\n').unwrap();
        assert!(text.starts_with(r#""\u0000\u0001"#), "{text}");
        assert!(text.contains(r##"\u001f !\"#$"##), "{text}");
        assert!(text.contains(r#"Z[\\]^"#), "{text}");
        assert!(
            text.chars().all(|c| c >= ' '),
            "a raw control character in {text:?}"
        );
        assert_eq!(parse_json(text), Value::String(all));
    }
}
