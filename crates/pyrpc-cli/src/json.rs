//! JSON <-> [`Value`]: plain JSON for the shapes JSON has, a one-key tagged
//! object (`{"$tuple": [...]}`) for the rest. See `docs/decisions/0004-cli-json-encoding.md`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use num_bigint::BigInt;
use pyrpc_proto::Value;
use serde_json::{Map, Number, Value as Json};

/// The encoding, for `--help`.
pub(crate) const HELP: &str = "\
VALUES (arguments and results) are JSON:
  null, true/false, 12, 1.5, \"text\", [..], {\"key\": ..}
                       None, bool, int, float, str, list, dict with str keys
and a one-key object for the Python shapes JSON lacks:
  {\"$tuple\": [1, 2]}            (1, 2)
  {\"$bytes\": \"AAH/\"}            b'\\x00\\x01\\xff'  (standard base64)
  {\"$int\": \"123456789012345678901234567890\"}   an int of any size
  {\"$float\": \"nan\"}             nan, inf, -inf
  {\"$set\": [1]}  {\"$frozenset\": [1]}
  {\"$dict\": [[[1, 2], \"a\"]]}     {(1, 2): 'a'}  (keys that are not str;
                                 an array key is read as a tuple)
Results are printed the same way, or as Python literals with --repr.";

/// Why a JSON text is not a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct JsonError(pub(crate) String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, JsonError> {
    Err(JsonError(msg.into()))
}

/// Parses a JSON text into a value.
pub(crate) fn parse(text: &str) -> Result<Value, JsonError> {
    let json: Json = serde_json::from_str(text).map_err(|e| JsonError(e.to_string()))?;
    from_json(json)
}

/// Converts parsed JSON into a value.
pub(crate) fn from_json(json: Json) -> Result<Value, JsonError> {
    Ok(match json {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => number(&n)?,
        Json::String(s) => Value::Str(s),
        Json::Array(items) => Value::List(list(items)?),
        Json::Object(map) => object(map)?,
    })
}

fn number(n: &Number) -> Result<Value, JsonError> {
    if let Some(i) = n.as_i64() {
        Ok(Value::Int(i))
    } else if let Some(u) = n.as_u64() {
        Ok(Value::from(u))
    } else if let Some(f) = n.as_f64() {
        Ok(Value::Float(f))
    } else {
        err(format!("{n} is not a number pyrpc can send"))
    }
}

fn list(items: Vec<Json>) -> Result<Vec<Value>, JsonError> {
    items.into_iter().map(from_json).collect()
}

fn object(map: Map<String, Json>) -> Result<Value, JsonError> {
    if map.len() == 1 {
        if let Some((tag, inner)) = map.iter().next() {
            if tag.starts_with('$') {
                return tagged(tag, inner.clone());
            }
        }
    }
    let mut entries = Vec::with_capacity(map.len());
    for (k, v) in map {
        entries.push((Value::Str(k), from_json(v)?));
    }
    Ok(Value::Dict(entries))
}

fn array(tag: &str, inner: Json) -> Result<Vec<Json>, JsonError> {
    match inner {
        Json::Array(items) => Ok(items),
        other => err(format!("{tag} takes an array, got {other}")),
    }
}

fn string(tag: &str, inner: Json) -> Result<String, JsonError> {
    match inner {
        Json::String(s) => Ok(s),
        other => err(format!("{tag} takes a string, got {other}")),
    }
}

fn tagged(tag: &str, inner: Json) -> Result<Value, JsonError> {
    Ok(match tag {
        "$tuple" => Value::Tuple(list(array(tag, inner)?)?),
        "$set" => Value::Set(list(array(tag, inner)?)?),
        "$frozenset" => Value::FrozenSet(list(array(tag, inner)?)?),
        "$bytes" => {
            let text = string(tag, inner)?;
            let raw = BASE64
                .decode(text.as_bytes())
                .map_err(|e| JsonError(format!("$bytes is not base64: {e}")))?;
            Value::Bytes(Bytes::from(raw))
        }
        "$bytearray" => {
            let text = string(tag, inner)?;
            let raw = BASE64
                .decode(text.as_bytes())
                .map_err(|e| JsonError(format!("$bytearray is not base64: {e}")))?;
            Value::ByteArray(Bytes::from(raw))
        }
        "$decimal" => Value::Decimal(string(tag, inner)?),
        "$uuid" => {
            let text = string(tag, inner)?;
            let hex: String = text.chars().filter(|c| *c != '-').collect();
            let mut raw = [0u8; 16];
            if hex.len() != 32 || !hex.is_ascii() {
                return err(format!("$uuid takes 32 hex digits, got {text:?}"));
            }
            for (i, byte) in raw.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| JsonError(format!("$uuid takes 32 hex digits, got {text:?}")))?;
            }
            Value::Uuid(raw)
        }
        "$complex" => match list(array(tag, inner)?)?.as_slice() {
            [re, im] => match (re.as_f64(), im.as_f64()) {
                (Some(re), Some(im)) => Value::Complex { re, im },
                _ => return err("$complex takes [real, imag] numbers".to_owned()),
            },
            _ => return err("$complex takes [real, imag] numbers".to_owned()),
        },
        "$int" => {
            let text = string(tag, inner)?;
            let n: BigInt = text
                .trim()
                .parse()
                .map_err(|_| JsonError(format!("$int takes decimal digits, got {text:?}")))?;
            Value::from(n)
        }
        "$float" => {
            let text = string(tag, inner)?;
            match text.as_str() {
                "nan" => Value::Float(f64::NAN),
                "inf" => Value::Float(f64::INFINITY),
                "-inf" => Value::Float(f64::NEG_INFINITY),
                other => Value::Float(other.parse().map_err(|_| {
                    JsonError(format!("$float takes nan, inf, -inf or a number, got {other:?}"))
                })?),
            }
        }
        "$dict" => {
            let mut entries = Vec::new();
            for pair in array(tag, inner)? {
                match pair {
                    Json::Array(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                            entries.push((key(k)?, from_json(v)?));
                        }
                    }
                    other => return err(format!("$dict takes [key, value] pairs, got {other}")),
                }
            }
            Value::Dict(entries)
        }
        other => {
            return err(format!(
                "unknown tag {other:?} (known: $tuple, $bytes, $int, $float, $set, $frozenset, \
                 $dict, $bytearray, $decimal, $uuid, $complex; a dict whose only key starts with '$' is written {{\"$dict\": [[key, value]]}})"
            ))
        }
    })
}

/// A dict key: an array is read as a tuple, since a list cannot be a key.
fn key(json: Json) -> Result<Value, JsonError> {
    match json {
        Json::Array(items) => Ok(Value::Tuple(
            items.into_iter().map(key).collect::<Result<_, _>>()?,
        )),
        other => from_json(other),
    }
}

fn one(tag: &str, inner: Json) -> Json {
    let mut m = Map::new();
    m.insert(tag.to_owned(), inner);
    Json::Object(m)
}

/// Converts a value to JSON, tagging what JSON cannot say.
pub(crate) fn to_json(v: &Value) -> Json {
    let items = |items: &[Value]| Json::Array(items.iter().map(to_json).collect());
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::BigInt(b) => one("$int", Json::String(b.to_string())),
        Value::Float(f) => match Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => one(
                "$float",
                Json::String(
                    if f.is_nan() {
                        "nan"
                    } else if *f > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    }
                    .to_owned(),
                ),
            ),
        },
        Value::Str(s) => Json::String(s.clone()),
        Value::Bytes(b) => one("$bytes", Json::String(BASE64.encode(b))),
        Value::ByteArray(b) => one("$bytearray", Json::String(BASE64.encode(b))),
        Value::Decimal(d) => one("$decimal", Json::String(d.clone())),
        Value::Uuid(_) => {
            // Python's repr is UUID('...'): keep the hyphenated text.
            let repr = v.to_string();
            let text = repr.trim_start_matches("UUID('").trim_end_matches("')");
            one("$uuid", Json::String(text.to_owned()))
        }
        Value::Complex { re, im } => one(
            "$complex",
            Json::Array(vec![
                to_json(&Value::Float(*re)),
                to_json(&Value::Float(*im)),
            ]),
        ),
        // An array: its elements nested in lists along its shape.
        Value::NdArray(a) => one("$ndarray", to_json(&a.to_nested())),
        // Dates, times, fractions and records: their Python repr, for reading only.
        Value::DateTime(_)
        | Value::Date(_)
        | Value::Time(_)
        | Value::TimeDelta(_)
        | Value::Fraction(_)
        | Value::Record(_) => one("$repr", Json::String(v.to_string())),
        Value::Encoded(b) => {
            match pyrpc_proto::raw::decode_value(b.clone(), pyrpc_proto::MAX_VALUE_DEPTH) {
                Ok(v) => to_json(&v),
                Err(e) => one("$repr", Json::String(format!("<{e}>"))),
            }
        }
        Value::List(v) => items(v),
        Value::Tuple(v) => one("$tuple", items(v)),
        Value::Set(v) => one("$set", items(v)),
        Value::FrozenSet(v) => one("$frozenset", items(v)),
        Value::Dict(entries) => {
            let str_keys = entries.iter().all(|(k, _)| matches!(k, Value::Str(_)));
            // A plain object unless a key is not a str, or the object would
            // read back as a tag (one key starting with '$'), or keys repeat.
            let looks_tagged =
                entries.len() == 1 && matches!(&entries[0].0, Value::Str(s) if s.starts_with('$'));
            let mut map = Map::new();
            if str_keys && !looks_tagged {
                for (k, v) in entries {
                    if let Value::Str(k) = k {
                        map.insert(k.clone(), to_json(v));
                    }
                }
                if map.len() == entries.len() {
                    return Json::Object(map);
                }
            }
            one(
                "$dict",
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                ),
            )
        }
        Value::Pickle(p) => one("$pickle", Json::String(BASE64.encode(p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        from_json(to_json(v)).expect("round trip")
    }

    #[test]
    fn plain_json_is_plain_values() {
        let v = parse(r#"[null, true, 1, -2, 1.5, "s", {"k": [1]}]"#).expect("parse");
        assert_eq!(v.to_string(), "[None, True, 1, -2, 1.5, 's', {'k': [1]}]");
        assert_eq!(
            parse("18446744073709551615").expect("u64"),
            Value::from(u64::MAX)
        );
    }

    #[test]
    fn tags_cover_the_python_shapes() {
        let v = parse(
            r#"{"$tuple": [{"$bytes": "AAH/"}, {"$int": "-123456789012345678901234567890"},
                {"$set": [1]}, {"$frozenset": []}, {"$dict": [[[1, 2], "a"]]},
                {"$float": "-inf"}, {"$tuple": []}]}"#,
        )
        .expect("parse");
        assert_eq!(
            v.to_string(),
            "(b'\\x00\\x01\\xff', -123456789012345678901234567890, {1}, frozenset(), \
             {(1, 2): 'a'}, -inf, ())"
        );
    }

    #[test]
    fn new_kinds_have_tags() {
        let v = parse(
            r#"[{"$decimal": "-0"}, {"$uuid": "12345678-1234-5678-1234-567812345678"},
                {"$complex": [1, -2.5]}, {"$bytearray": "YWI="}]"#,
        )
        .expect("parse");
        assert_eq!(
            v.to_string(),
            "[Decimal('-0'), UUID('12345678-1234-5678-1234-567812345678'), complex(1.0, -2.5), \
             bytearray(b'ab')]"
        );
        assert_eq!(round_trip(&v), v);
        let date = Value::Date(pyrpc_proto::Date {
            year: 2024,
            month: 1,
            day: 2,
        });
        assert_eq!(
            to_json(&date).to_string(),
            r#"{"$repr":"datetime.date(2024, 1, 2)"}"#
        );
    }

    #[test]
    fn every_value_round_trips() {
        let cases = [
            Value::tuple([Value::from(1), Value::tuple([])]),
            Value::dict([(Value::from("$tuple"), Value::from(1))]),
            Value::dict([(Value::from(1), Value::from(2))]),
            Value::dict([
                (Value::from("a"), Value::from(1)),
                (Value::from("b"), Value::None),
            ]),
            Value::from(u128::MAX),
            Value::from(i64::MIN),
            Value::Bytes(Bytes::from_static(b"\x00\xff")),
            Value::Set(vec![Value::from("x")]),
            Value::FrozenSet(vec![]),
            Value::from(2.5),
            Value::from(f64::INFINITY),
        ];
        for v in cases {
            assert_eq!(round_trip(&v), v, "{v}");
        }
        assert!(matches!(round_trip(&Value::from(f64::NAN)), Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn output_is_compact_json() {
        let v = Value::tuple([
            Value::tuple([Value::from(1)]),
            Value::dict([(Value::from("foo"), Value::from("foo"))]),
        ]);
        assert_eq!(
            to_json(&v).to_string(),
            r#"{"$tuple":[{"$tuple":[1]},{"foo":"foo"}]}"#
        );
    }

    #[test]
    fn bad_input_says_why() {
        assert_eq!(
            parse(r#"{"$int": "12x"}"#),
            Err(JsonError(r#"$int takes decimal digits, got "12x""#.into()))
        );
        assert!(parse(r#"{"$nope": 1}"#)
            .expect_err("tag")
            .0
            .contains("unknown tag"));
        assert!(parse(r#"{"$bytes": "***"}"#)
            .expect_err("b64")
            .0
            .contains("base64"));
        assert!(parse("foo").is_err());
    }
}
