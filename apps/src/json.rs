//! A one-line JSON object writer: enough for run summaries without a
//! serialization framework.

use std::fmt::Write;

#[derive(Default)]
pub struct JsonLine {
    out: String,
}

impl JsonLine {
    pub fn new() -> Self {
        JsonLine::default()
    }

    fn key(&mut self, k: &str) -> &mut String {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        push_str(&mut self.out, k);
        self.out.push(':');
        &mut self.out
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k).push_str(if v { "true" } else { "false" });
        self
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        let _ = write!(self.key(k), "{v}");
        self
    }

    /// Non-finite numbers become `null`, which JSON can represent.
    pub fn f64(&mut self, k: &str, v: f64) -> &mut Self {
        if v.is_finite() {
            let _ = write!(self.key(k), "{v}");
        } else {
            self.key(k).push_str("null");
        }
        self
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        push_str(self.key(k), v);
        self
    }

    /// `v` is already JSON (an object or array built separately).
    pub fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k).push_str(v);
        self
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => {
                self.key(k).push_str("null");
                self
            }
        }
    }

    pub fn finish(&self) -> String {
        if self.out.is_empty() {
            "{}".to_string()
        } else {
            format!("{}}}", self.out)
        }
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_object() {
        let mut j = JsonLine::new();
        j.bool("ok", true)
            .u64("bytes", 42)
            .f64("t", 1.5)
            .f64("nan", f64::NAN)
            .str("s", "a\"b\\c\n")
            .opt_str("e", None);
        assert_eq!(
            j.finish(),
            r#"{"ok":true,"bytes":42,"t":1.5,"nan":null,"s":"a\"b\\c\n","e":null}"#
        );
        assert_eq!(JsonLine::new().finish(), "{}");
    }
}
