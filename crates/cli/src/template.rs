//! `--format`: Go text/template, as the docker CLI runs it, over serde_json documents.
//!
//! The template language is the `gotmpl` crate (a port of Go's `text/template`); this module
//! adds what the docker CLI adds around it:
//! - its functions: `json`, `join`, `split`, `upper`, `lower`, `title`, `pad`, `truncate`
//!   (besides Go's own `index`, `printf`, `len`, `eq`, … and `range`/`if`/`with`);
//! - `table` formats: `table {{.ID}}\t{{.Names}}` prints a header row (each field's column
//!   title) and aligns the `\t`-separated cells like Go's tabwriter (min width 10, padding 3);
//! - `\t` and `\n` written literally in the format are tabs and newlines;
//! - `json` as the whole format means `{{json .}}`.
//!
//! ```ignore
//! let t = Template::parse("table {{.ID}}\t{{.Names}}")?;
//! print!("{}", t.render_list(&rows, &json!({"ID": "CONTAINER ID", "Names": "NAMES"}))?);
//! ```

use gotmpl::Value;

/// A bad `--format`: it did not parse, or failed on the data.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template parsing error: {0}")]
    Parse(#[source] gotmpl::TemplateError),
    #[error("template: executing {format:?}: {source}")]
    Execute {
        format: String,
        #[source]
        source: gotmpl::TemplateError,
    },
}

/// A parsed `--format`.
pub struct Template {
    source: String,
    body: gotmpl::Template,
    /// The same body run over the column titles (functions pass their argument through).
    header: Option<gotmpl::Template>,
    /// The format is the whole document as JSON (`json`, `{{json .}}`): written straight from
    /// the document, so its `null`s stay `null` (see [`to_value`]).
    whole_json: bool,
}

const TABLE: &str = "table";

impl Template {
    /// Parse a `--format` value (`table …` and `json` included).
    pub fn parse(format: &str) -> Result<Template, TemplateError> {
        let (table, body) = match format.strip_prefix(TABLE) {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let body = if body == "json" {
            "{{json .}}".to_string()
        } else {
            body
        };
        let parsed = with_functions(gotmpl::Template::new(""))
            .parse(&body)
            .map_err(TemplateError::Parse)?;
        let header = if table {
            Some(
                with_header_functions(gotmpl::Template::new(""))
                    .parse(&body)
                    .map_err(TemplateError::Parse)?,
            )
        } else {
            None
        };
        let whole_json = body.replace(' ', "") == "{{json.}}";
        Ok(Template {
            source: format.to_string(),
            body: parsed,
            header,
            whole_json,
        })
    }

    /// `format`, or the command's default table when the user wrote just `table`.
    pub fn parse_or_default(format: &str, default_table: &str) -> Result<Template, TemplateError> {
        if format.trim() == TABLE {
            Template::parse(default_table)
        } else {
            Template::parse(format)
        }
    }

    /// Whether the format began with `table` (header row, aligned columns).
    pub fn is_table(&self) -> bool {
        self.header.is_some()
    }

    /// One document through the template, no newline added.
    pub fn render(&self, data: &serde_json::Value) -> Result<String, TemplateError> {
        if self.whole_json && !self.is_table() {
            return Ok(data.to_string());
        }
        let value = to_value(data);
        self.body
            .execute_to_string(&value)
            .map_err(|source| TemplateError::Execute {
                format: self.source.clone(),
                source,
            })
    }

    /// Every item on its own line; for a `table` format, a header row made from `headers`
    /// (field name to column title) first and the columns aligned.
    pub fn render_list(
        &self,
        items: &[serde_json::Value],
        headers: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        if let Some(header) = &self.header {
            let value = to_value(headers);
            let line =
                header
                    .execute_to_string(&value)
                    .map_err(|source| TemplateError::Execute {
                        format: self.source.clone(),
                        source,
                    })?;
            out.push_str(&line);
            out.push('\n');
        }
        for item in items {
            out.push_str(&self.render(item)?);
            out.push('\n');
        }
        Ok(if self.is_table() { align(&out) } else { out })
    }
}

/// Go's tabwriter as the docker CLI sets it up (minwidth 10, padding 3): every tab-terminated
/// cell is padded to its column's width; the text after a line's last tab is left as it is.
pub fn align(text: &str) -> String {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(MIN_WIDTH);
            }
            widths[i] = widths[i].max(cell.chars().count() + PADDING);
        }
    }
    let mut out = Vec::with_capacity(lines.len());
    for cells in &lines {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push(line);
    }
    out.join("\n")
}

fn with_functions(t: gotmpl::Template) -> gotmpl::Template {
    t.func("json", |args| {
        let [v] = args else {
            return Err(arg_count("json", 1, args.len()));
        };
        let text = serde_json::to_string(&to_json(v))
            .map_err(|e| gotmpl::TemplateError::Exec(format!("json: {e}")))?;
        Ok(Value::String(text.into()))
    })
    // Go's `index`, except that a key a map lacks (or any key of a nil map) gives "" (the zero
    // value of Docker's string maps, such as labels) rather than `<no value>`.
    .func("index", |args| {
        let Some((first, keys)) = args.split_first().filter(|(_, keys)| !keys.is_empty()) else {
            return Err(arg_count("index", 2, args.len()));
        };
        let mut value = first.clone();
        for key in keys {
            value = match (&value, key) {
                (Value::Map(map), Value::String(k)) => map
                    .get(k.as_ref())
                    .cloned()
                    .unwrap_or_else(|| Value::String("".into())),
                (Value::List(items), Value::String(_)) if items.is_empty() => {
                    Value::String("".into())
                }
                _ => value.index(key)?,
            };
        }
        Ok(value)
    })
    .func("join", |args| {
        let [list, sep] = args else {
            return Err(arg_count("join", 2, args.len()));
        };
        let sep = string_arg("join", sep)?;
        let parts: Vec<String> = match list {
            Value::List(items) => items.iter().map(plain).collect(),
            Value::Nil => Vec::new(),
            other => return Err(type_error("join", "list", other)),
        };
        Ok(Value::String(parts.join(&sep).into()))
    })
    .func("split", |args| {
        let [s, sep] = args else {
            return Err(arg_count("split", 2, args.len()));
        };
        let (s, sep) = (string_arg("split", s)?, string_arg("split", sep)?);
        let parts: Vec<Value> = s.split(sep.as_str()).map(Value::from).collect();
        Ok(Value::from(parts))
    })
    .func("upper", |args| {
        map_string("upper", args, |s| s.to_uppercase())
    })
    .func("lower", |args| {
        map_string("lower", args, |s| s.to_lowercase())
    })
    .func("title", |args| map_string("title", args, title))
    .func("pad", |args| {
        let [s, before, after] = args else {
            return Err(arg_count("pad", 3, args.len()));
        };
        let s = string_arg("pad", s)?;
        let (before, after) = (count_arg("pad", before)?, count_arg("pad", after)?);
        Ok(Value::String(
            format!("{}{s}{}", " ".repeat(before), " ".repeat(after)).into(),
        ))
    })
    .func("truncate", |args| {
        let [s, n] = args else {
            return Err(arg_count("truncate", 2, args.len()));
        };
        let s = string_arg("truncate", s)?;
        let n = count_arg("truncate", n)?;
        Ok(Value::String(s.chars().take(n).collect::<String>().into()))
    })
}

/// For the header row: every function hands back its first argument (the column title).
fn with_header_functions(t: gotmpl::Template) -> gotmpl::Template {
    let mut t = t;
    for name in [
        "json", "join", "split", "upper", "lower", "title", "pad", "truncate",
    ] {
        t = t.func(name, |args| Ok(args.first().cloned().unwrap_or(Value::Nil)));
    }
    t
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

fn map_string(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> gotmpl::Result<Value> {
    let [s] = args else {
        return Err(arg_count(name, 1, args.len()));
    };
    Ok(Value::String(f(&string_arg(name, s)?).into()))
}

fn arg_count(name: &str, expected: usize, got: usize) -> gotmpl::TemplateError {
    gotmpl::TemplateError::ArgCount {
        name: name.to_string(),
        expected,
        got,
    }
}

fn type_error(name: &str, expected: &str, got: &Value) -> gotmpl::TemplateError {
    gotmpl::TemplateError::Exec(format!(
        "{name}: expected a {expected}, got {}",
        to_json(got)
    ))
}

fn string_arg(name: &str, v: &Value) -> gotmpl::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        other => Err(type_error(name, "string", other)),
    }
}

fn count_arg(name: &str, v: &Value) -> gotmpl::Result<usize> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as usize),
        Value::Uint(n) => Ok(*n as usize),
        other => Err(type_error(name, "non-negative integer", other)),
    }
}

/// A value as `{{.}}` prints it (strings unquoted).
fn plain(v: &Value) -> String {
    v.to_string()
}

/// A document as template data. JSON `null` is one of Go's nil slices or maps in Docker's
/// documents; it becomes an empty list, so `{{.Config.Cmd}}` prints `[]` as docker's does
/// (not `<no value>`), at the price of `{{json .Config.Cmd}}` printing `[]` for `null`.
pub fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::List(Vec::new().into()),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Uint(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(to_value).collect()),
        serde_json::Value::Object(map) => Value::Map(std::sync::Arc::new(
            map.iter()
                .map(|(k, v)| (std::sync::Arc::from(k.as_str()), to_value(v)))
                .collect(),
        )),
    }
}

/// A template value back as JSON (for `json`).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(n) => (*n).into(),
        Value::Uint(n) => (*n).into(),
        Value::Float(f) => (*f).into(),
        Value::String(s) => s.to_string().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> serde_json::Value {
        json!({
            "Id": "abc",
            "State": {"Running": true, "ExitCode": 0},
            "Config": {"Cmd": ["sh", "-c", "true"], "Labels": {"a": "1", "b": "2"}},
            "Name": "/web",
        })
    }

    #[test]
    fn fields_and_booleans_render_like_go() {
        let t = Template::parse("{{.State.Running}} {{.State.ExitCode}} {{.Name}}").unwrap();
        assert_eq!(t.render(&doc()).unwrap(), "true 0 /web");
    }

    #[test]
    fn json_join_index_range_and_case_functions() {
        let d = doc();
        let render = |f: &str| Template::parse(f).unwrap().render(&d).unwrap();
        assert_eq!(render("{{json .Config.Cmd}}"), r#"["sh","-c","true"]"#);
        assert_eq!(render("{{join .Config.Cmd \" \"}}"), "sh -c true");
        assert_eq!(render("{{index .Config.Labels \"b\"}}"), "2");
        assert_eq!(render("{{index .Config.Labels \"nosuch\"}}|"), "|");
        assert_eq!(render("{{index .Config.Cmd 1}}"), "-c");
        assert_eq!(
            render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
            "a=1;b=2;"
        );
        assert_eq!(render("{{upper .Name}} {{lower \"AB\"}}"), "/WEB ab");
        assert_eq!(render("{{printf \"%5s|\" .Id}}"), "  abc|");
        assert_eq!(render("{{.Config.Cmd}}"), "[sh -c true]");
        assert_eq!(render("json"), serde_json::to_string(&d).unwrap());
        let with_null = json!({"Cmd": null, "Env": ["A=1"]});
        let t = Template::parse("{{ json . }}").unwrap();
        assert_eq!(
            t.render(&with_null).unwrap(),
            r#"{"Cmd":null,"Env":["A=1"]}"#
        );
        let image = json!({"Config": {"Cmd": null}});
        let t = Template::parse("{{.Config.Cmd}}").unwrap();
        assert_eq!(t.render(&image).unwrap(), "[]");
        assert_eq!(render("{{truncate .Id 2}}{{pad \"x\" 1 1}}"), "ab x ");
    }

    #[test]
    fn table_prints_titles_and_aligns_columns() {
        let t = Template::parse("table {{.ID}}\\t{{.Names}}").unwrap();
        assert!(t.is_table());
        let rows = vec![
            json!({"ID": "0123456789abcdef", "Names": "web"}),
            json!({"ID": "1", "Names": "db"}),
        ];
        let out = t
            .render_list(&rows, &json!({"ID": "CONTAINER ID", "Names": "NAMES"}))
            .unwrap();
        assert_eq!(
            out,
            "CONTAINER ID       NAMES\n0123456789abcdef   web\n1                  db\n"
        );
    }

    #[test]
    fn a_plain_format_prints_one_line_per_item() {
        let t = Template::parse("{{.Names}}").unwrap();
        let out = t
            .render_list(&[json!({"Names": "a"}), json!({"Names": "b"})], &json!({}))
            .unwrap();
        assert_eq!(out, "a\nb\n");
    }

    #[test]
    fn bad_templates_are_errors_naming_the_problem() {
        let err = Template::parse("{{.Name").err().unwrap();
        assert!(
            err.to_string().starts_with("template parsing error"),
            "{err}"
        );
        // Unknown functions are found when the template runs (Go finds them when parsing).
        let err = Template::parse("{{nosuchfunc .}}")
            .unwrap()
            .render(&doc())
            .unwrap_err();
        assert!(err.to_string().contains("nosuchfunc"), "{err}");
        let err = Template::parse("{{join .Name 1}}")
            .unwrap()
            .render(&doc())
            .unwrap_err();
        assert!(err.to_string().contains("join"), "{err}");
    }
}
