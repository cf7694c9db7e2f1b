//! Copy-and-paste examples: an example URL with its parameters filled in, and websocat and
//! browser JavaScript snippets that connect (with the API's credential) and send a message.

use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::api_view::ways;
use super::collect::{MessageDoc, ParamDoc, SchemeDoc};
use super::view::SnippetView;

/// Characters encoded in a parameter value placed in an example URL.
pub(super) const PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn example_of(m: &MessageDoc) -> Option<Value> {
    m.examples
        .first()
        .cloned()
        .or_else(|| m.payload.as_ref().map(crate::examples::from_schema))
}

/// websocat and browser JavaScript snippets that connect to `url` (and send `message`).
pub(super) fn snippets(
    url: &str,
    auth_required: bool,
    schemes: &[SchemeDoc],
    message: Option<&Value>,
) -> SnippetView {
    let all_ways = || schemes.iter().flat_map(|s| ways(s, true));
    let way = all_ways().next();
    let bearer_default = auth_required && way.is_none();
    let mut header = None;
    let mut query = None;
    let mut subprotocol = None;
    let mut browser_note = None;
    if auth_required {
        match &way {
            Some(w) if w.place == "header" => {
                header = Some(format!("{}: {}", w.name, w.example));
                // Bearer schemes also accept the query parameter, which browsers can use.
                let schemes_query = all_ways().find(|w| w.place == "query");
                match schemes_query {
                    Some(q) => query = Some(format!("{}={}", q.name, q.example)),
                    None => {
                        browser_note = Some(format!(
                            "// This API wants the `{}` header, which browsers cannot set on a WebSocket.",
                            w.name
                        ))
                    }
                }
            }
            Some(w) if w.place == "query" => query = Some(format!("{}={}", w.name, w.example)),
            Some(w) if w.place == "subprotocol" => subprotocol = Some(w.example.clone()),
            _ if bearer_default => {
                header = Some("Authorization: Bearer YOUR_TOKEN".into());
                query = Some("access_token=YOUR_TOKEN".into());
            }
            _ => {}
        }
    }
    let with_query = |url: &str, q: &Option<String>| match q {
        Some(q) if url.contains('?') => format!("{url}&{q}"),
        Some(q) => format!("{url}?{q}"),
        None => url.to_string(),
    };
    let text = message.map(|m| match m {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let mut websocat = String::new();
    if text.is_some() {
        websocat.push_str("# prints what the API sends; each line you type is sent\n");
    } else {
        websocat.push_str("# prints what the API sends\n");
    }
    websocat.push_str("websocat");
    if let Some(h) = &header {
        let _ = write!(websocat, " -H '{h}'");
    }
    if let Some(p) = &subprotocol {
        let _ = write!(websocat, " --protocol '{p}'");
    }
    let ws_url = if header.is_some() {
        url.to_string()
    } else {
        with_query(url, &query)
    };
    let _ = writeln!(websocat, " '{ws_url}'");
    if let Some(t) = &text {
        // One line: websocat sends each line as one text message.
        websocat.push_str(&t.replace('\n', " "));
        websocat.push('\n');
    }
    let mut js = String::new();
    if let Some(note) = browser_note {
        js.push_str(&note);
        js.push('\n');
    }
    if query.is_some() && header.is_some() {
        js.push_str(
            "// Browsers cannot set headers on a WebSocket: the credential goes in the query.\n",
        );
    }
    let js_url = serde_json::to_string(&with_query(url, &query)).unwrap_or_default();
    match &subprotocol {
        Some(p) => {
            let _ = writeln!(
                js,
                "const socket = new WebSocket({js_url}, [{}]);",
                serde_json::to_string(p).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(js, "const socket = new WebSocket({js_url});");
        }
    }
    match message {
        Some(Value::String(s)) => {
            let _ = writeln!(
                js,
                "socket.addEventListener(\"open\", () => {{\n  socket.send({});\n}});",
                serde_json::to_string(s).unwrap_or_default()
            );
        }
        Some(other) => {
            let _ = writeln!(
                js,
                "socket.addEventListener(\"open\", () => {{\n  socket.send(JSON.stringify({}));\n}});",
                other
            );
        }
        None => {}
    }
    js.push_str("socket.addEventListener(\"message\", (event) => {\n  console.log(\"received:\", event.data);\n});\n");
    js.push_str("socket.addEventListener(\"close\", (event) => {\n  console.log(\"closed:\", event.code, event.reason);\n});\n");
    SnippetView {
        websocat: websocat.trim_end().to_string(),
        javascript: js.trim_end().to_string(),
    }
}

/// The route pattern with each `{parameter}` replaced by an example value (percent-encoded), and
/// a wildcard's `*` by `example`.
pub(super) fn example_path(pattern: &str, params: &[ParamDoc]) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let value = params
                    .iter()
                    .find(|p| p.name == name)
                    .and_then(|p| p.schema.as_ref())
                    .map(crate::examples::from_schema)
                    .map(|v| match v {
                        Value::String(s) if s == "string" => name.to_string(),
                        Value::String(s) => s,
                        Value::Null => name.to_string(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| name.to_string());
                utf8_percent_encode(&value, PARAM).to_string()
            } else if seg == "*" {
                "example".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `?a=1&b=x` for the binding's required query parameters.
pub(super) fn example_query(binding: Option<&Value>) -> String {
    let Some(query) = binding.and_then(|b| b.get("query")) else {
        return String::new();
    };
    let required: Vec<&str> = query
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut pairs = Vec::new();
    for (name, schema) in query
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !required.contains(&name.as_str()) {
            continue;
        }
        let value = match crate::examples::from_schema(schema) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        pairs.push(format!(
            "{}={}",
            utf8_percent_encode(name, PARAM),
            utf8_percent_encode(&value, PARAM)
        ));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn example_paths_fill_parameters() {
        let params = vec![ParamDoc {
            name: "room".into(),
            description: None,
            schema: Some(json!({"type": "string", "examples": ["a b"]})),
        }];
        assert_eq!(
            example_path("/c/1/rooms/{room}/*", &params),
            "/c/1/rooms/a%20b/example"
        );
        assert_eq!(example_path("/c/{other}", &params), "/c/other");
    }
}
