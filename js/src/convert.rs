//! The one place where JavaScript values and the core's types meet: arguments come in as
//! [`Arg`] (read on the JavaScript thread), results go out as [`Js`] (built on it). Fields
//! of returned values and options come from `softadastra::surface` by name, in camelCase,
//! so a field or option added there appears here without a list kept by hand.

use std::ptr;

use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{ValueType, sys};
use softadastra::surface::{self, Described, Field, OptionKind, Value};
use softadastra::{Error, Result};

/// A JavaScript value read into Rust, so that the work can leave the JavaScript thread.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    /// undefined or null.
    None,
    Bool(bool),
    Number(f64),
    BigInt(u64),
    Text(String),
    Bytes(Vec<u8>),
    List(Vec<Arg>),
    Object(Vec<(String, Arg)>),
    /// Anything else (a function, a symbol, a negative or huge BigInt): named in errors.
    Other(&'static str),
}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!(
            "{what} failed (napi status {status})"
        )))
    }
}

impl Arg {
    /// Reads `value` (and what it holds, to a depth of 4).
    ///
    /// # Safety
    /// `env` and `value` are a live environment and a value of it (on the JS thread).
    pub(crate) unsafe fn read(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Arg> {
        unsafe { Self::read_depth(env, value, 4) }
    }

    /// Reads a batch of calls laid out flat, as index.js makes them: for each call, its
    /// number, how many arguments follow, then the arguments (one array for the batch,
    /// not one per call: fewer Node-API calls per call).
    ///
    /// # Safety
    /// `env` and `value` are a live environment and a value of it (on the JS thread).
    pub(crate) unsafe fn read_calls(
        env: sys::napi_env,
        value: sys::napi_value,
    ) -> napi::Result<crate::calls::Batch> {
        let mut batch = crate::calls::Batch::default();
        unsafe {
            let mut len = 0u32;
            check(sys::napi_get_array_length(env, value, &mut len), "calls")?;
            let element = |i: u32| -> napi::Result<sys::napi_value> {
                let mut item = ptr::null_mut();
                check(sys::napi_get_element(env, value, i, &mut item), "call")?;
                Ok(item)
            };
            let number = |i: u32| -> napi::Result<u32> {
                let mut n = 0u32;
                check(
                    sys::napi_get_value_uint32(env, element(i)?, &mut n),
                    "call number",
                )?;
                Ok(n)
            };
            let mut i = 0u32;
            while i < len {
                let call = number(i)?;
                let count = number(i.saturating_add(1))?;
                let end = i.saturating_add(2).saturating_add(count);
                if end > len {
                    return Err(napi::Error::from_reason(
                        "a call's arguments run past the batch",
                    ));
                }
                for a in i + 2..end {
                    batch.args.push(Self::read(env, element(a)?)?);
                }
                batch.calls.push((call, count as usize));
                i = end;
            }
        }
        Ok(batch)
    }

    unsafe fn read_depth(
        env: sys::napi_env,
        value: sys::napi_value,
        depth: u32,
    ) -> napi::Result<Arg> {
        let mut kind = 0;
        unsafe {
            check(sys::napi_typeof(env, value, &mut kind), "napi_typeof")?;
            Ok(match ValueType::from(kind) {
                ValueType::Undefined | ValueType::Null => Arg::None,
                ValueType::Boolean => {
                    let mut b = false;
                    check(sys::napi_get_value_bool(env, value, &mut b), "bool")?;
                    Arg::Bool(b)
                }
                ValueType::Number => {
                    let mut n = 0.0;
                    check(sys::napi_get_value_double(env, value, &mut n), "number")?;
                    Arg::Number(n)
                }
                ValueType::BigInt => {
                    let (mut n, mut lossless) = (0u64, false);
                    check(
                        sys::napi_get_value_bigint_uint64(env, value, &mut n, &mut lossless),
                        "bigint",
                    )?;
                    if lossless {
                        Arg::BigInt(n)
                    } else {
                        Arg::Other("a BigInt outside 0..2^64")
                    }
                }
                ValueType::String => Arg::Text(read_string(env, value)?),
                ValueType::Object => Self::read_object(env, value, depth)?,
                _ => Arg::Other("a function or a symbol"),
            })
        }
    }

    unsafe fn read_object(
        env: sys::napi_env,
        value: sys::napi_value,
        depth: u32,
    ) -> napi::Result<Arg> {
        unsafe {
            let mut is = false;
            check(sys::napi_is_typedarray(env, value, &mut is), "typedarray")?;
            if is {
                let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut());
                check(
                    sys::napi_get_typedarray_info(
                        env,
                        value,
                        &mut kind,
                        &mut len,
                        &mut data,
                        ptr::null_mut(),
                        ptr::null_mut(),
                    ),
                    "typedarray info",
                )?;
                if kind != sys::TypedarrayType::uint8_array {
                    return Ok(Arg::Other("a typed array other than Uint8Array"));
                }
                if len == 0 || data.is_null() {
                    return Ok(Arg::Bytes(Vec::new()));
                }
                let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
                return Ok(Arg::Bytes(bytes.to_vec()));
            }
            if depth == 0 {
                return Ok(Arg::Other("an object nested too deep"));
            }
            check(sys::napi_is_array(env, value, &mut is), "is_array")?;
            if is {
                let mut len = 0u32;
                check(sys::napi_get_array_length(env, value, &mut len), "length")?;
                let mut items = Vec::with_capacity(len.min(4096) as usize);
                for i in 0..len {
                    let mut item = ptr::null_mut();
                    check(sys::napi_get_element(env, value, i, &mut item), "element")?;
                    items.push(Self::read_depth(env, item, depth - 1)?);
                }
                return Ok(Arg::List(items));
            }
            let mut names = ptr::null_mut();
            check(
                sys::napi_get_property_names(env, value, &mut names),
                "property names",
            )?;
            let mut len = 0u32;
            check(sys::napi_get_array_length(env, names, &mut len), "length")?;
            let mut fields = Vec::with_capacity(len.min(4096) as usize);
            for i in 0..len {
                let mut name = ptr::null_mut();
                check(sys::napi_get_element(env, names, i, &mut name), "name")?;
                let mut item = ptr::null_mut();
                check(
                    sys::napi_get_property(env, value, name, &mut item),
                    "property",
                )?;
                let Arg::Text(name) = Self::read_depth(env, name, 0)? else {
                    continue;
                };
                fields.push((name, Self::read_depth(env, item, depth - 1)?));
            }
            Ok(Arg::Object(fields))
        }
    }

    /// What the value is, for an error message.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Arg::None => "undefined",
            Arg::Bool(_) => "a boolean",
            Arg::Number(_) => "a number",
            Arg::BigInt(_) => "a BigInt",
            Arg::Text(_) => "a string",
            Arg::Bytes(_) => "a Uint8Array",
            Arg::List(_) => "an array",
            Arg::Object(_) => "an object",
            Arg::Other(what) => what,
        }
    }

    /// A named field of an object argument (`Arg::None` when missing).
    pub(crate) fn field(&self, name: &str) -> &Arg {
        match self {
            Arg::Object(fields) => fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&Arg::None, |(_, v)| v),
            _ => &Arg::None,
        }
    }
}

unsafe fn read_string(env: sys::napi_env, value: sys::napi_value) -> napi::Result<String> {
    // Most strings (keys) are short: one Node-API call into a buffer on the stack, rather
    // than one for the length and one for the bytes.
    let mut short = [0u8; 128];
    let mut written = 0usize;
    unsafe {
        check(
            sys::napi_get_value_string_utf8(
                env,
                value,
                short.as_mut_ptr().cast(),
                short.len(),
                &mut written,
            ),
            "string",
        )?;
    }
    // Node stops before a character that does not fit (at most 4 bytes) and keeps a byte
    // for the terminating zero: this much room left means the string was whole.
    let bytes = if written + 4 < short.len() - 1 {
        short[..written].to_vec()
    } else {
        unsafe { read_long_string(env, value)? }
    };
    // Node writes UTF-8 (lone surrogates become U+FFFD).
    Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
}

unsafe fn read_long_string(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Vec<u8>> {
    let mut len = 0usize;
    unsafe {
        check(
            sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len),
            "string length",
        )?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0usize;
        check(
            sys::napi_get_value_string_utf8(
                env,
                value,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut written,
            ),
            "string",
        )?;
        buf.truncate(written);
        Ok(buf)
    }
}

/// An `InvalidArgument` error naming the argument and what it was.
pub(crate) fn bad_argument(name: &str, expected: &str, got: &Arg) -> Error {
    Error::InvalidArgument {
        argument: name.to_string(),
        reason: format!("expected {expected}, got {}", got.describe()),
    }
}

pub(crate) fn text<'a>(name: &str, arg: &'a Arg) -> Result<&'a str> {
    match arg {
        Arg::Text(s) => Ok(s),
        other => Err(bad_argument(name, "a string", other)),
    }
}

/// A value: a string (its UTF-8 bytes) or a Uint8Array/Buffer.
pub(crate) fn bytes<'a>(name: &str, arg: &'a Arg) -> Result<&'a [u8]> {
    match arg {
        Arg::Text(s) => Ok(s.as_bytes()),
        Arg::Bytes(b) => Ok(b),
        other => Err(bad_argument(name, "a string, Buffer or Uint8Array", other)),
    }
}

pub(crate) fn flag(name: &str, arg: &Arg) -> Result<bool> {
    match arg {
        Arg::None => Ok(false),
        Arg::Bool(b) => Ok(*b),
        other => Err(bad_argument(name, "a boolean", other)),
    }
}

/// A whole number from 0 to `max`: a Number (a safe integer) or a BigInt.
pub(crate) fn uint(name: &str, arg: &Arg, max: u64) -> Result<u64> {
    let n = match arg {
        Arg::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= 9_007_199_254_740_991.0 => {
            *n as u64
        }
        Arg::BigInt(n) => *n,
        other => {
            return Err(bad_argument(
                name,
                "a whole number from 0 (a Number up to 2^53, or a BigInt)",
                other,
            ));
        }
    };
    if n > max {
        return Err(bad_argument(name, &format!("at most {max}"), arg));
    }
    Ok(n)
}

/// A result on its way to JavaScript (converted on the JavaScript thread).
#[derive(Clone, Debug)]
pub enum Js {
    /// undefined.
    Undefined,
    /// A boolean.
    Bool(bool),
    /// A Number.
    Number(f64),
    /// A BigInt (versions, per-origin numbers).
    BigInt(u64),
    /// A signed BigInt.
    Int(i64),
    /// A string.
    Text(String),
    /// A Buffer (a copy).
    Bytes(Vec<u8>),
    /// An array.
    List(Vec<Js>),
    /// A plain object, its properties in this order.
    Object(Vec<(String, Js)>),
}

/// snake_case to camelCase: `auto_flush` is `autoFlush`.
pub(crate) fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an unsigned field may exceed 2^53 and so crosses as a BigInt: versions (hybrid
/// clock values: milliseconds shifted left) and per-origin numbers. Counts, ports and
/// milliseconds stay Numbers.
pub(crate) fn is_wide(name: &str) -> bool {
    name.ends_with("version") || name.ends_with("seq")
}

impl Js {
    /// A field's value, converted by its name and kind.
    pub(crate) fn of_value(name: &str, value: &Value) -> Js {
        match value {
            Value::Text(s) => Js::Text(s.clone()),
            Value::Bool(b) => Js::Bool(*b),
            Value::Uint(n) if is_wide(name) => Js::BigInt(*n),
            // An option set above 2^53 reads back as a BigInt rather than a rounded Number.
            Value::Uint(n) if *n > 9_007_199_254_740_991 => Js::BigInt(*n),
            Value::Uint(n) => Js::Number(*n as f64),
            Value::Int(n) => Js::Number(*n as f64),
            Value::List(items) => Js::List(items.iter().cloned().map(Js::Text).collect()),
        }
    }

    /// Every field of a described value, as an object with camelCase names.
    pub(crate) fn of_fields(fields: &[Field]) -> Js {
        Js::Object(
            fields
                .iter()
                .map(|f| (camel(f.name), Js::of_value(f.name, &f.value)))
                .collect(),
        )
    }

    pub(crate) fn described(value: &dyn Described) -> Js {
        Js::of_fields(&value.fields())
    }

    /// An error as `{code, codeNumber, message, context}`; `code` is the snake_case name
    /// of C++ `Error::code_string()`.
    pub(crate) fn error(e: &Error) -> Js {
        let code = e.code();
        Js::Object(vec![
            ("code".into(), Js::Text(code.as_str().into())),
            ("codeNumber".into(), Js::Number(f64::from(code as u32))),
            ("message".into(), Js::Text(e.to_string())),
            ("context".into(), Js::Text(e.context())),
        ])
    }

    /// `[true, value]` or `[false, error]`: what every call resolves to.
    pub(crate) fn outcome(result: Result<Js>) -> Js {
        match result {
            Ok(v) => Js::List(vec![Js::Bool(true), v]),
            Err(e) => Js::List(vec![Js::Bool(false), Js::error(&e)]),
        }
    }
}

impl TypeName for Js {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Js {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let mut out = ptr::null_mut();
        unsafe {
            match val {
                Js::Undefined => check(sys::napi_get_undefined(env, &mut out), "undefined")?,
                Js::Bool(b) => check(sys::napi_get_boolean(env, b, &mut out), "boolean")?,
                Js::Number(n) => check(sys::napi_create_double(env, n, &mut out), "number")?,
                Js::BigInt(n) => {
                    check(sys::napi_create_bigint_uint64(env, n, &mut out), "bigint")?;
                }
                Js::Int(n) => check(sys::napi_create_bigint_int64(env, n, &mut out), "bigint")?,
                Js::Text(s) => check(
                    sys::napi_create_string_utf8(
                        env,
                        s.as_ptr().cast(),
                        s.len() as isize,
                        &mut out,
                    ),
                    "string",
                )?,
                Js::Bytes(b) => {
                    let mut data = ptr::null_mut();
                    check(
                        sys::napi_create_buffer_copy(
                            env,
                            b.len(),
                            b.as_ptr().cast(),
                            &mut data,
                            &mut out,
                        ),
                        "buffer",
                    )?;
                }
                Js::List(items) => {
                    check(
                        sys::napi_create_array_with_length(env, items.len(), &mut out),
                        "array",
                    )?;
                    for (i, item) in items.into_iter().enumerate() {
                        let v = Js::to_napi_value(env, item)?;
                        check(sys::napi_set_element(env, out, i as u32, v), "element")?;
                    }
                }
                Js::Object(fields) => {
                    check(sys::napi_create_object(env, &mut out), "object")?;
                    for (name, item) in fields {
                        let v = Js::to_napi_value(env, item)?;
                        let k = Js::to_napi_value(env, Js::Text(name))?;
                        check(sys::napi_set_property(env, out, k, v), "property")?;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Options from a JavaScript object whose properties are the camelCase names of
/// `surface::OPTIONS`; a property missing keeps the default. A property that is no option
/// (a typo) or holds the wrong kind is an error naming it.
pub(crate) fn options_from(arg: &Arg) -> Result<softadastra::ClientOptions> {
    let mut options = softadastra::ClientOptions::default();
    let Arg::Object(fields) = arg else {
        return Err(bad_argument("options", "a ClientOptions object", arg));
    };
    for (name, value) in fields {
        let Some(spec) = surface::OPTIONS.iter().find(|s| camel(s.name) == *name) else {
            return Err(bad_argument(
                name,
                "a ClientOptions field",
                &Arg::Other("no such option"),
            ));
        };
        if matches!(value, Arg::None) {
            continue;
        }
        let v = match spec.kind {
            OptionKind::SaOptionKindText => Value::Text(text(name, value)?.to_string()),
            OptionKind::SaOptionKindBool => match value {
                Arg::Bool(b) => Value::Bool(*b),
                other => return Err(bad_argument(name, "a boolean", other)),
            },
            OptionKind::SaOptionKindUint => Value::Uint(uint(name, value, spec.max)?),
        };
        surface::set_option(&mut options, spec.id, v)?;
    }
    Ok(options)
}

/// Every option of `options`, camelCase names.
pub(crate) fn options_to(options: &softadastra::ClientOptions) -> Js {
    Js::described(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_camel_cased() {
        assert_eq!(camel("auto_flush"), "autoFlush");
        assert_eq!(camel("discovery_broadcast_port"), "discoveryBroadcastPort");
        assert_eq!(camel("version"), "version");
    }

    #[test]
    fn every_option_round_trips_through_its_camel_case_name() {
        let mut o = softadastra::ClientOptions::fast("js-node", "/tmp/x.wal");
        o.transport_port = 4041;
        o.max_clock_drift_ms = u64::MAX;
        let Js::Object(fields) = options_to(&o) else {
            panic!("options are an object")
        };
        assert_eq!(fields.len(), surface::OPTIONS.len());
        let arg = Arg::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let a = match v {
                        Js::Text(s) => Arg::Text(s),
                        Js::Bool(b) => Arg::Bool(b),
                        Js::Number(n) => Arg::Number(n),
                        Js::BigInt(n) => Arg::BigInt(n),
                        other => panic!("{k}: {other:?}"),
                    };
                    (k, a)
                })
                .collect(),
        );
        assert_eq!(options_from(&arg).unwrap(), o);
    }

    #[test]
    fn a_misspelt_or_mistyped_option_is_an_error_naming_it() {
        let e =
            options_from(&Arg::Object(vec![("autoflush".into(), Arg::Bool(true))])).unwrap_err();
        assert!(e.to_string().contains("autoflush"), "{e}");
        let e = options_from(&Arg::Object(vec![(
            "transportPort".into(),
            Arg::Number(70000.0),
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("transportPort"), "{e}");
        let e = options_from(&Arg::Object(vec![(
            "autoFlush".into(),
            Arg::Text("yes".into()),
        )]))
        .unwrap_err();
        assert_eq!(e.code(), softadastra::ErrorCode::InvalidArgument);
    }
}
