//! The minijinja templates pages are rendered with (the built-ins from the workspace's
//! `templates/` folder, each replaceable) and the filters they may use.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value as JinjaValue};

use super::markdown::{
    breakable_url, escape_markdown_html, markdown_cell, markdown_code, markdown_inline,
    markdown_to_html,
};

/// The built-in templates, by name.
pub const BUILTIN_TEMPLATES: [(&str, &str); 5] = [
    (
        "index.html.j2",
        include_str!("../../../templates/index.html.j2"),
    ),
    (
        "api.html.j2",
        include_str!("../../../templates/api.html.j2"),
    ),
    ("api.md.j2", include_str!("../../../templates/api.md.j2")),
    (
        "style.css.j2",
        include_str!("../../../templates/style.css.j2"),
    ),
    (
        "macros.html.j2",
        include_str!("../../../templates/macros.html.j2"),
    ),
];

/// The templates pages are rendered with: the built-ins, each replaceable, plus any extra partials.
#[derive(Clone, Debug)]
pub struct Templates {
    pub(super) sources: BTreeMap<String, String>,
    pub(super) overridden: Vec<String>,
}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {
            sources: BUILTIN_TEMPLATES
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            overridden: Vec::new(),
        }
    }

    /// Replaces a built-in template, or adds a partial the others may `include`.
    pub fn set(&mut self, name: impl Into<String>, source: impl Into<String>) {
        let name = name.into();
        self.overridden.push(name.clone());
        self.sources.insert(name, source.into());
    }

    /// Names set with [`Templates::set`], in order.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    pub fn is_builtin(name: &str) -> bool {
        BUILTIN_TEMPLATES.iter().any(|(n, _)| *n == name)
    }

    pub(super) fn environment(&self) -> Result<Environment<'static>, String> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| e.to_string())?,
        );
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(auto_escape);
        env.set_recursion_limit(64);
        for (name, source) in &self.sources {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| describe_error(&e))?;
        }
        env.add_filter("markdown", |text: Option<String>| {
            JinjaValue::from_safe_string(markdown_to_html(text.as_deref().unwrap_or_default()))
        });
        env.add_filter("markdown_inline", |text: Option<String>| {
            JinjaValue::from_safe_string(markdown_inline(text.as_deref().unwrap_or_default()))
        });
        env.add_filter("url", |text: Option<String>| {
            JinjaValue::from_safe_string(breakable_url(text.as_deref().unwrap_or_default()))
        });
        env.add_filter("md", |text: Option<String>| {
            escape_markdown_html(text.as_deref().unwrap_or_default())
        });
        env.add_filter("cell", |text: Option<String>| {
            markdown_cell(text.as_deref().unwrap_or_default())
        });
        env.add_filter("code", |text: Option<String>| {
            markdown_code(text.as_deref().unwrap_or_default())
        });
        Ok(env)
    }
}

/// HTML escaping for `*.html`, `*.htm` and `*.xml` templates (also with a `.j2` or `.jinja`
/// suffix); none elsewhere (Markdown templates escape with the `md` and `cell` filters).
pub(super) fn auto_escape(name: &str) -> AutoEscape {
    let base = name
        .strip_suffix(".j2")
        .or_else(|| name.strip_suffix(".jinja"))
        .or_else(|| name.strip_suffix(".jinja2"))
        .unwrap_or(name);
    match base.rsplit('.').next() {
        Some("html" | "htm" | "xml" | "svg") => AutoEscape::Html,
        _ => AutoEscape::None,
    }
}

pub(super) fn describe_error(e: &minijinja::Error) -> String {
    let mut text = format!("template error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}
