//! Rendering: one view per API (from the plan, the specs, or both), then the index and an HTML
//! and a Markdown page per API through the templates.

use std::collections::HashSet;

use super::api_view::api_view;
use super::collect::{collect, Collected, SourceApi};
use super::templates::{describe_error, Templates};
use super::view::{ApiSummary, ApiView, BaseUrlView, SiteView};
use super::{Options, Page};
use crate::compile::Compilation;
use crate::plan::{slug, Plan, PlanApi};

/// Renders the index, and an HTML and a Markdown page per API.
///
/// With a plan, the pages document the plan's APIs (matched to `collected` by source file and
/// hash; an API without a match is documented from the plan alone). Without one, every collected
/// document is documented as plain AsyncAPI, without gateway URLs.
pub fn render(
    collected: &Collected,
    plan: Option<&Plan>,
    options: &Options,
    templates: &Templates,
) -> Result<Vec<Page>, String> {
    let env = templates.environment()?;
    let (ws, wss) = (
        options.public_urls.ws().map(str::to_string),
        options.public_urls.wss().map(str::to_string),
    );
    let mut used_names: HashSet<String> = HashSet::new();
    let mut views: Vec<ApiView> = Vec::new();
    match plan {
        Some(plan) => {
            for api in &plan.apis {
                let source = collected.apis.iter().find(|s| matches_source(s, api));
                let file_stem = unique_stem(&api.name, &api.version, &mut used_names);
                views.push(api_view(source, Some((api, plan)), &file_stem, options));
            }
        }
        None => {
            for source in &collected.apis {
                let version = source
                    .version
                    .clone()
                    .unwrap_or_else(|| "unversioned".into());
                let file_stem = unique_stem(&slug(&source.title), &version, &mut used_names);
                views.push(api_view(Some(source), None, &file_stem, options));
            }
        }
    }
    let site = SiteView {
        title: "API documentation".into(),
        generator: format!("Portico {}", env!("CARGO_PKG_VERSION")),
        plan_hash: plan.map(|p| p.hash.clone()),
        gateway: plan.is_some(),
        base_url: BaseUrlView { ws, wss },
        spec_links: options.spec_links,
        apis: views.iter().map(summary).collect(),
    };
    let mut pages = Vec::new();
    let index = env
        .get_template("index.html.j2")
        .and_then(|t| t.render(minijinja::context! { site => minijinja::value::Serde(&site) }))
        .map_err(|e| describe_error(&e))?;
    pages.push(Page {
        path: "index.html".into(),
        content: finish(index),
    });
    for view in &views {
        for (template, path) in [("api.html.j2", &view.html), ("api.md.j2", &view.md)] {
            let content = env
                .get_template(template)
                .and_then(|t| t.render(minijinja::context! { site => minijinja::value::Serde(&site), api => minijinja::value::Serde(view) }))
                .map_err(|e| format!("{} ({}): {}", view.title, path, describe_error(&e)))?;
            let content = if path.ends_with(".md") {
                collapse_blank_lines(&content)
            } else {
                content
            };
            pages.push(Page {
                path: path.clone(),
                content: finish(content),
            });
        }
    }
    Ok(pages)
}

/// [`collect`] and [`render`] in one: the plan is the compilation's, when it has one.
pub fn render_compilation(
    compilation: &Compilation,
    options: &Options,
    templates: &Templates,
) -> Result<Vec<Page>, String> {
    render(
        &collect(compilation),
        compilation.plan.as_ref(),
        options,
        templates,
    )
}

/// The raw spec of each plan API that has one: `(api name, version, text)`.
pub fn spec_files<'a>(
    collected: &'a Collected,
    plan: &'a Plan,
) -> Vec<(&'a str, &'a str, &'a str)> {
    plan.apis
        .iter()
        .filter_map(|api| {
            collected
                .apis
                .iter()
                .find(|s| matches_source(s, api))
                .map(|s| (api.name.as_str(), api.version.as_str(), s.text.as_str()))
        })
        .collect()
}

/// Trailing whitespace trimmed, one final newline: stable files whatever the template does.
pub(super) fn finish(mut text: String) -> String {
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    text.push('\n');
    text
}

/// At most one blank line in a row outside fenced code blocks (templates are easier to write
/// when a skipped `{% if %}` may leave an extra one).
pub(super) fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    let mut blank_run = 0;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if trimmed.is_empty() && !in_fence {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(trimmed);
        out.push('\n');
    }
    out
}

pub(super) fn matches_source(source: &SourceApi, api: &PlanApi) -> bool {
    source.sha256 == api.source.sha256
        && source.title == api.title
        && source.version.as_deref() == Some(api.version.as_str())
        && (source.path == api.source.file
            || source
                .path
                .replace('\\', "/")
                .ends_with(&format!("/{}", api.source.file)))
}

pub(super) fn unique_stem(name: &str, version: &str, used: &mut HashSet<String>) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._~-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("{name}-{version}");
    let mut stem = base.clone();
    let mut n = 2;
    while !used.insert(stem.clone()) || stem == "index" {
        stem = format!("{base}-{n}");
        n += 1;
    }
    stem
}

pub(super) fn summary(view: &ApiView) -> ApiSummary {
    ApiSummary {
        name: view.name.clone(),
        title: view.title.clone(),
        version: view.version.clone(),
        html: view.html.clone(),
        md: view.md.clone(),
        summary: view.description.as_deref().and_then(first_paragraph),
        lifecycle: view.lifecycle.clone(),
        context: view.context.clone(),
        default_context: view.default_context.clone(),
        url: view
            .servers
            .iter()
            .find(|s| s.kind == "gateway")
            .map(|s| s.url.clone()),
        channels: view.channels.len(),
        operations: view.operations.len(),
        messages: view.messages.len(),
        spec: view.source.spec.clone(),
    }
}

/// The first paragraph of a Markdown text, as plain text (for the index).
pub(super) fn first_paragraph(text: &str) -> Option<String> {
    let para: Vec<&str> = text
        .trim()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = para.join(" ");
    (!joined.is_empty()).then_some(joined)
}
