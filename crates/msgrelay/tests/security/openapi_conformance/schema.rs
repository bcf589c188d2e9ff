//! A walker over the JSON Schemas of an OpenAPI 3.1 document: [`Doc::validate`] checks a value,
//! [`Doc::valid`] draws one value the schema accepts, [`Doc::invalid`] draws values it refuses,
//! each labelled with how. Only what the documents use is supported (`$ref`, `oneOf`/`anyOf`,
//! `enum`, `type` lists, string lengths, patterns and formats, integer bounds, arrays, objects
//! with `required` and `additionalProperties`); anything else fails loudly rather than passing.

use rand::rngs::StdRng;
use rand::Rng;
use regex::Regex;
use serde_json::{json, Map, Value};

/// Unbounded integers (row ids) are drawn far from the small ids existing rows have.
const FAR_ID: i64 = 900_000;

pub struct Doc<'a> {
    pub root: &'a Value,
}

fn types(s: &Value) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    let actual = type_of(v);
    t == actual || (t == "number" && actual == "integer")
}

fn num(s: &Value, key: &str) -> Option<f64> {
    s.get(key).and_then(Value::as_f64)
}

fn len(s: &Value, key: &str) -> Option<usize> {
    s.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

fn is_null_schema(s: &Value) -> bool {
    types(s) == ["null"]
}

impl<'a> Doc<'a> {
    /// The schema `s` points to, following `$ref`s into `components/schemas`.
    pub fn resolve<'s>(&self, s: &'s Value) -> &'s Value
    where
        'a: 's,
    {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unsupported $ref {r}"));
                let target = &self.root["components"]["schemas"][name];
                assert!(!target.is_null(), "dangling $ref {r}");
                self.resolve(target)
            }
            None => s,
        }
    }

    /// `Ok` when `v` satisfies `schema`; else where and why not.
    pub fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(schema);
        for key in ["not", "if", "patternProperties", "const", "multipleOf"] {
            assert!(
                s.get(key).is_none(),
                "{at}: unsupported schema keyword {key}"
            );
        }
        for b in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.validate(b, v, at)?;
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
            if !any.iter().any(|b| self.validate(b, v, at).is_ok()) {
                return Err(format!("{at}: matches no anyOf branch"));
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let n = one
                .iter()
                .filter(|b| self.validate(b, v, at).is_ok())
                .count();
            if n != 1 {
                return Err(format!("{at}: matches {n} oneOf branches"));
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                return Err(format!("{at}: {v} is not one of {e:?}"));
            }
        }
        let ts = types(s);
        if !ts.is_empty() && !ts.iter().any(|t| type_matches(t, v)) {
            return Err(format!("{at}: {} is not {ts:?}", type_of(v)));
        }
        match v {
            Value::String(st) => self.validate_string(s, st, at),
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if num(s, "minimum").is_some_and(|m| x < m) {
                    return Err(format!("{at}: {x} below minimum"));
                }
                if num(s, "maximum").is_some_and(|m| x > m) {
                    return Err(format!("{at}: {x} above maximum"));
                }
                Ok(())
            }
            Value::Array(items) => {
                if let Some(item) = s.get("items") {
                    for (i, x) in items.iter().enumerate() {
                        self.validate(item, x, &format!("{at}[{i}]"))?;
                    }
                }
                Ok(())
            }
            Value::Object(obj) => self.validate_object(s, obj, at),
            _ => Ok(()),
        }
    }

    fn validate_string(&self, s: &Value, st: &str, at: &str) -> Result<(), String> {
        let n = st.chars().count();
        if len(s, "minLength").is_some_and(|m| n < m) {
            return Err(format!("{at}: shorter than minLength"));
        }
        if len(s, "maxLength").is_some_and(|m| n > m) {
            return Err(format!("{at}: longer than maxLength"));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(p).unwrap_or_else(|e| panic!("{at}: pattern {p}: {e}"));
            if !re.is_match(st) {
                return Err(format!("{at}: does not match {p}"));
            }
        }
        let ok = match s.get("format").and_then(Value::as_str) {
            Some("uuid") => uuid::Uuid::parse_str(st).is_ok(),
            Some("date-time") => chrono::DateTime::parse_from_rfc3339(st).is_ok(),
            Some("date") => chrono::NaiveDate::parse_from_str(st, "%Y-%m-%d").is_ok(),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{at}: not a {}", s["format"]))
        }
    }

    fn validate_object(&self, s: &Value, obj: &Map<String, Value>, at: &str) -> Result<(), String> {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().expect("required names");
            if !obj.contains_key(r) {
                return Err(format!("{at}: missing required {r}"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => self.validate(ps, x, &format!("{at}.{k}"))?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Err(format!("{at}: unknown field {k}")),
                    Some(extra @ Value::Object(_)) => {
                        self.validate(extra, x, &format!("{at}.{k}"))?
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    /// One value `schema` accepts: its example if it has one (a pattern without an example is
    /// refused: values are not drawn from regular expressions), else drawn from its constraints.
    pub fn valid(&self, schema: &Value, rng: &mut StdRng, at: &str) -> Value {
        let v = self.draw_valid(schema, rng, at);
        if let Err(e) = self.validate(schema, &v, at) {
            panic!("{at}: the drawn valid value {v} is refused by its own schema: {e}");
        }
        v
    }

    fn draw_valid(&self, schema: &Value, rng: &mut StdRng, at: &str) -> Value {
        let s = self.resolve(schema);
        assert!(
            s.get("allOf").is_none(),
            "{at}: drawing from allOf is not supported"
        );
        if let Some(ex) = s.get("example") {
            return ex.clone();
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e[rng.gen_range(0..e.len())].clone();
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(bs) = s.get(key).and_then(Value::as_array) {
                let non_null: Vec<&Value> = bs
                    .iter()
                    .filter(|b| !is_null_schema(self.resolve(b)))
                    .collect();
                let b = non_null[rng.gen_range(0..non_null.len())];
                return self.draw_valid(b, rng, at);
            }
        }
        let t = types(s)
            .into_iter()
            .find(|t| *t != "null")
            .unwrap_or_else(|| panic!("{at}: schema without a type: {s}"));
        match t {
            "string" => {
                assert!(
                    s.get("pattern").is_none(),
                    "{at}: a pattern needs an example to draw valid values from"
                );
                match s.get("format").and_then(Value::as_str) {
                    Some("uuid") => {
                        return json!(uuid::Uuid::from_u128(rng.gen::<u128>()).to_string())
                    }
                    Some("date-time") => return json!("2026-06-01T12:00:00Z"),
                    Some("date") => return json!("2026-06-01"),
                    _ => {}
                }
                let min = len(s, "minLength").unwrap_or(1).max(1);
                let max = len(s, "maxLength").unwrap_or(min + 16).min(min + 16);
                let n = rng.gen_range(min..=max);
                const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                json!((0..n)
                    .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
                    .collect::<String>())
            }
            "integer" => {
                let (lo, hi) = (num(s, "minimum"), num(s, "maximum"));
                match (lo, hi) {
                    (None, None) => json!(FAR_ID + rng.gen_range(0..1000)),
                    _ => {
                        let lo = lo.unwrap_or(0.0) as i64;
                        let hi = hi.map_or(lo + 1000, |h| (h as i64).min(lo + 1000));
                        json!(rng.gen_range(lo..=hi))
                    }
                }
            }
            "number" => json!(rng.gen_range(0..1000)),
            "boolean" => json!(rng.gen::<bool>()),
            "array" => {
                let n = rng.gen_range(1..=2);
                json!((0..n)
                    .map(|i| self.draw_valid(&s["items"], rng, &format!("{at}[{i}]")))
                    .collect::<Vec<_>>())
            }
            "object" => {
                let required: Vec<&str> = s
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut out = Map::new();
                for (k, ps) in s
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    if required.contains(&k.as_str()) || rng.gen::<bool>() {
                        out.insert(k.clone(), self.draw_valid(ps, rng, &format!("{at}.{k}")));
                    }
                }
                Value::Object(out)
            }
            other => panic!("{at}: unsupported type {other}"),
        }
    }

    /// Values `schema` refuses, each with how it breaks the schema. Every candidate is checked
    /// against the schema, so a label never lies.
    pub fn invalid(&self, schema: &Value, rng: &mut StdRng, at: &str) -> Vec<(String, Value)> {
        let s = self.resolve(schema);
        let base = self.valid(schema, rng, at);
        let mut out: Vec<(String, Value)> = Vec::new();
        // Wrong type: the first JSON type the schema does not allow.
        let allowed: Vec<&str> = if types(s).is_empty() {
            vec![type_of(&base)]
        } else {
            types(s)
        };
        if let Some(wrong) = [
            json!("x"),
            json!(12345),
            json!(true),
            json!([1]),
            json!({"a": 1}),
        ]
        .into_iter()
        .find(|c| !allowed.iter().any(|t| type_matches(t, c)))
        {
            out.push(("wrong type".into(), wrong));
        }
        if s.get("enum").is_some() {
            out.push(("not in the enum".into(), json!("not-a-member")));
        }
        for key in ["oneOf", "anyOf"] {
            for b in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                if !is_null_schema(self.resolve(b)) {
                    out.extend(self.invalid(b, rng, at));
                }
            }
        }
        if let Value::String(st) = &base {
            if let Some(max) = len(s, "maxLength") {
                out.push(("too long".into(), json!("a".repeat(max + 1))));
            }
            if let Some(min) = len(s, "minLength").filter(|m| *m > 0) {
                out.push(("too short".into(), json!("a".repeat(min - 1))));
            }
            if s.get("pattern").is_some() {
                out.push(("off-pattern".into(), json!(format!("{st}\u{1}!"))));
                out.push(("off-pattern".into(), json!(format!("!{st}"))));
            }
            if s.get("format").is_some() {
                out.push(("bad format".into(), json!("not-a-value")));
            }
        }
        if base.is_number() {
            if let Some(m) = num(s, "minimum") {
                out.push(("below minimum".into(), json!(m as i64 - 1)));
            }
            if let Some(m) = num(s, "maximum") {
                out.push(("above maximum".into(), json!(m as i64 + 1)));
            }
            if types(s).contains(&"integer") {
                out.push(("not an integer".into(), json!(1.5)));
            }
        }
        if let (Value::Array(_), Some(item)) = (&base, s.get("items")) {
            for (label, bad) in self.invalid(item, rng, &format!("{at}[]")) {
                out.push((format!("item {label}"), json!([bad])));
            }
        }
        if let Value::Object(obj) = &base {
            self.invalid_object(s, obj, rng, at, &mut out);
        }
        out.retain(|(_, v)| self.validate(schema, v, at).is_err());
        out
    }

    fn invalid_object(
        &self,
        s: &Value,
        base: &Map<String, Value>,
        rng: &mut StdRng,
        at: &str,
        out: &mut Vec<(String, Value)>,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        // Every property present, so each can be broken in turn.
        let mut full = base.clone();
        for (k, ps) in props.into_iter().flatten() {
            if !full.contains_key(k) {
                full.insert(k.clone(), self.valid(ps, rng, &format!("{at}.{k}")));
            }
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut o = full.clone();
            let r = r.as_str().expect("name");
            o.remove(r);
            out.push((format!("{r} missing"), Value::Object(o)));
        }
        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
            let mut o = full.clone();
            o.insert("zz_unknown".into(), json!(1));
            out.push(("unknown field".into(), Value::Object(o)));
        }
        for (k, ps) in props.into_iter().flatten() {
            for (label, bad) in self.invalid(ps, rng, &format!("{at}.{k}")) {
                let mut o = full.clone();
                o.insert(k.clone(), bad);
                out.push((format!("{k}: {label}"), Value::Object(o)));
            }
        }
    }
}
