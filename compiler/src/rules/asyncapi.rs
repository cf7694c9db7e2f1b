//! Rules the official parser (`@asyncapi/parser`) enforces beyond the JSON Schema, plus a few the
//! AsyncAPI TCK expects and the official parser misses. Codes reuse the official parser's rule names
//! where they are the same check (`asyncapi2-channel-parameters`, `asyncapi2-server-variables`, ...);
//! checks shared by 2.x and 3.x carry a version-neutral `asyncapi-` prefix.
//!
//! All rules read the resolved document ([`Resolved`]) so that a message defined in another file is
//! checked once, where it is written; AsyncAPI 3 operation/channel links are compared on the raw tree
//! through [`refs::target_of`](crate::refs::target_of).

use std::collections::HashMap;

use serde_json::Value;

use crate::diagnostics::Diagnostic;
use crate::files::Files;
use crate::model::{is_json_schema_format, template_parameters};
use crate::refs::Resolved;
use crate::schema::SpecVersion;
use crate::source::{escape_pointer_token, FileId, Node, NodeValue};

/// What the specification (and the AsyncAPI TCK) forbids but the official parser accepts and the
/// gateway serves correctly: errors under `--lint` (conformance), warnings when compiling for the
/// gateway (`--deny-warnings` makes them block). See [`for_gateway`].
pub const SPEC_ONLY: &[&str] = &[
    "asyncapi-schema-discriminator",
    "asyncapi-server-key",
    "asyncapi-components-key",
    "asyncapi-binding-invalid",
    "asyncapi-server-variable-enum",
];

/// Turns the [`SPEC_ONLY`] errors among `diags` into warnings, for a compilation for the gateway.
pub fn for_gateway(diags: &mut [Diagnostic]) {
    for d in diags {
        if d.severity == crate::diagnostics::Severity::Error && SPEC_ONLY.contains(&d.code) {
            d.severity = crate::diagnostics::Severity::Warning;
        }
    }
}

pub fn check(
    files: &Files,
    file: FileId,
    version: SpecVersion,
    doc: &Resolved,
    diags: &mut Vec<Diagnostic>,
) {
    let root = &doc.root;
    server_variables(root, version, diags);
    channel_addresses(root, version, diags);
    components_keys(root, diags);
    security_requirements(root, version, diags);
    tags_unique(root, "", diags);
    schema_values(root, diags);
    message_examples(root, version, diags);
    super::bindings::check(root, version, diags);
    if version.is_v3() {
        super::v3_links::check(files, file, diags);
    } else {
        v2_channel_servers(root, diags);
        ids_unique(root, diags);
    }
    style(root, diags);
}

/// Names AsyncAPI restricts to `^[A-Za-z0-9_\-]+$` (servers, parameters).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

fn ptr(parent: &str, key: &str) -> String {
    format!("{parent}/{}", escape_pointer_token(key))
}

/// `{var}` in a server URL must be declared in `variables`; declared ones should be used; examples
/// must be allowed by the variable's enum.
fn server_variables(root: &Node, version: SpecVersion, diags: &mut Vec<Diagnostic>) {
    let Some(servers) = root.get("servers") else {
        return;
    };
    let code = if version.is_v3() {
        "asyncapi3-server-variables"
    } else {
        "asyncapi2-server-variables"
    };
    for (name, server) in servers.entries() {
        let pointer = ptr("/servers", &name.name);
        if !is_plain_name(&name.name) {
            diags.push(
                Diagnostic::error(
                    "asyncapi-server-key",
                    format!("`{}` is not a valid server name", name.name),
                )
                .with_help("server names may only use letters, digits, `-` and `_`")
                .at(name.span, pointer.clone()),
            );
        }
        let url_fields: &[&str] = if version.is_v3() {
            &["host", "pathname"]
        } else {
            &["url"]
        };
        let vars = server.get("variables");
        let mut used = Vec::new();
        for field in url_fields {
            let Some(value) = server.get(field) else {
                continue;
            };
            let Some(text) = value.as_str() else { continue };
            // A 3.x `host` has no scheme, so any `@` in it introduces user-info.
            if crate::redact::has_user_info(text) || (*field == "host" && text.contains('@')) {
                diags.push(
                    Diagnostic::error(
                        "asyncapi-server-credentials",
                        format!(
                            "server `{}` has a user name or password in its {field}",
                            name.name
                        ),
                    )
                    .with_help("remove them from the spec, which is published in docs and plans; give credentials to the runtime (its configuration or environment) instead")
                    .at(value.span, ptr(&pointer, field)),
                );
            }
            for var in template_parameters(text) {
                if var.is_empty() {
                    diags.push(
                        Diagnostic::error(
                            code,
                            format!("server `{}` has an empty `{{}}` in its {field}", name.name),
                        )
                        .with_help("name the variable between the braces, or remove them")
                        .at(value.span, ptr(&pointer, field)),
                    );
                    continue;
                }
                if vars.and_then(|v| v.get(&var)).is_none() {
                    diags.push(Diagnostic::error(code, format!("server `{}` uses the variable `{{{var}}}` in its {field}, but does not define it", name.name))
                        .with_help(format!("add `{var}` under `variables` with a `default` value")).at(value.span, ptr(&pointer, field)));
                }
                used.push(var);
            }
        }
        for (var, def) in vars
            .map(|v| v.entries().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let var_pointer = ptr(&ptr(&pointer, "variables"), &var.name);
            if !used.contains(&var.name) {
                diags.push(
                    Diagnostic::warning(
                        code,
                        format!(
                            "server `{}` defines the variable `{}` but its URL does not use it",
                            name.name, var.name
                        ),
                    )
                    .with_help("remove the variable, or use it in the URL as `{name}`")
                    .at(var.span, var_pointer.clone()),
                );
            }
            let allowed = def.get("enum").and_then(Node::as_seq);
            if let Some(allowed) = allowed {
                if allowed.is_empty() {
                    diags.push(
                        Diagnostic::error(
                            code,
                            format!("the variable `{}` has an empty `enum`", var.name),
                        )
                        .with_help("list at least one allowed value, or remove `enum`")
                        .at(var.span, var_pointer.clone()),
                    );
                    continue;
                }
                let allowed_values: Vec<Value> = allowed.iter().map(Node::to_json).collect();
                // The AsyncAPI TCK calls this invalid; the official parser accepts it and the
                // gateway substitutes the default as written (one of [`SPEC_ONLY`]).
                let mut check = |n: &Node, what: &str, p: String| {
                    if !allowed_values.contains(&n.to_json()) {
                        diags.push(
                            Diagnostic::error(
                                "asyncapi-server-variable-enum",
                                format!(
                                    "the {what} {} of variable `{}` is not in its `enum`",
                                    n.to_json(),
                                    var.name
                                ),
                            )
                            .with_help(format!(
                                "use one of {}",
                                Value::Array(allowed_values.clone())
                            ))
                            .at(n.span, p),
                        );
                    }
                };
                if let Some(d) = def.get("default") {
                    check(d, "default", ptr(&var_pointer, "default"));
                }
                for (i, ex) in def
                    .get("examples")
                    .and_then(Node::as_seq)
                    .unwrap_or(&[])
                    .iter()
                    .enumerate()
                {
                    check(ex, "example", format!("{var_pointer}/examples/{i}"));
                }
            }
        }
    }
}

/// Channel addresses: no query or fragment; parameters in the address match `parameters`.
fn channel_addresses(root: &Node, version: SpecVersion, diags: &mut Vec<Diagnostic>) {
    let Some(channels) = root.get("channels") else {
        return;
    };
    for (key, channel) in channels.entries() {
        let pointer = ptr("/channels", &key.name);
        let address_pointer = if version.is_v3() {
            ptr(&pointer, "address")
        } else {
            pointer.clone()
        };
        let (address, address_span) = if version.is_v3() {
            match channel
                .get("address")
                .and_then(|a| a.as_str().map(|s| (s, a.span)))
            {
                Some((s, span)) => (s.to_string(), span),
                None => {
                    parameters_without_address(channel, &pointer, diags);
                    continue;
                }
            }
        } else {
            (key.name.clone(), key.span)
        };
        if address.contains('?') || address.contains('#') {
            let code = if version.is_v3() {
                "asyncapi3-channel-no-query-nor-hash"
            } else {
                "asyncapi2-channel-no-query-nor-hash"
            };
            diags.push(Diagnostic::error(code, format!("the channel address `{address}` contains a query or fragment"))
                .with_help("keep `?` and `#` out of channel addresses; describe query parameters in `bindings.ws.query`")
                .at(address_span, address_pointer.clone()));
        }
        let in_address = template_parameters(&address);
        let declared: Vec<(&crate::source::Key, &Node)> = channel
            .get("parameters")
            .map(|p| p.entries().collect())
            .unwrap_or_default();
        // A parameter used but not declared is an error (as in the official parser); one declared but
        // unused is a warning in 2.x, where the AsyncAPI TCK accepts it.
        let code = if version.is_v3() {
            "asyncapi3-channel-parameters"
        } else {
            "asyncapi2-channel-parameters"
        };
        let unused = |msg: String| {
            if version.is_v3() {
                Diagnostic::error(code, msg)
            } else {
                Diagnostic::warning(code, msg)
            }
        };
        for name in &in_address {
            if !declared.iter().any(|(k, _)| &k.name == name) {
                diags.push(Diagnostic::error(code, format!("the channel address `{address}` uses `{{{name}}}`, which is not declared in its `parameters`"))
                    .with_help(format!("add `{name}` under the channel's `parameters` with a schema"))
                    .at(address_span, address_pointer.clone()));
            }
        }
        for (k, _) in &declared {
            if !is_plain_name(&k.name) {
                diags.push(
                    Diagnostic::error(
                        "asyncapi-parameter-key",
                        format!("`{}` is not a valid parameter name", k.name),
                    )
                    .with_help("parameter names may only use letters, digits, `-` and `_`")
                    .at(k.span, ptr(&ptr(&pointer, "parameters"), &k.name)),
                );
                continue;
            }
            if !in_address.contains(&k.name) {
                diags.push(unused(format!("the parameter `{}` is declared but the address `{address}` does not use it", k.name))
                    .with_help(format!("use `{{{}}}` in the address, or remove the parameter", k.name))
                    .at(k.span, ptr(&ptr(&pointer, "parameters"), &k.name)));
            }
        }
    }
}

/// AsyncAPI 3: parameters exist only for expressions in an address, so a channel without an
/// address (`null` or absent: unknown or dynamic) has none.
fn parameters_without_address(channel: &Node, pointer: &str, diags: &mut Vec<Diagnostic>) {
    let Some((key, parameters)) = channel.entry("parameters") else {
        return;
    };
    if parameters.as_map().is_none_or(<[_]>::is_empty) {
        return;
    }
    diags.push(
        Diagnostic::error(
            "asyncapi3-channel-parameters",
            "the channel declares `parameters` but has no `address` to use them in",
        )
        .with_help(
            "give the channel an `address` with `{name}` expressions, or remove `parameters`",
        )
        .at(key.span, ptr(pointer, "parameters")),
    );
}

/// AsyncAPI 2.2+: a channel's `servers` names servers declared under the document's `servers`.
fn v2_channel_servers(root: &Node, diags: &mut Vec<Diagnostic>) {
    let Some(channels) = root.get("channels") else {
        return;
    };
    let declared: Vec<&str> = root
        .get("servers")
        .map(|s| s.entries().map(|(k, _)| k.name.as_str()).collect())
        .unwrap_or_default();
    for (key, channel) in channels.entries() {
        for (i, server) in channel
            .get("servers")
            .and_then(Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let Some(name) = server.as_str() else {
                continue;
            };
            if declared.contains(&name) {
                continue;
            }
            let help = match crate::suggest::closest(name, declared.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if declared.is_empty() => {
                    "declare the server under the document's `servers`".to_string()
                }
                None => format!(
                    "the document declares {}",
                    declared
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            diags.push(
                Diagnostic::error(
                    "asyncapi2-channel-servers",
                    format!(
                        "channel `{}` lists the server `{name}`, which the document's `servers` does not declare",
                        key.name
                    ),
                )
                .with_help(help)
                .at(server.span, format!("{}/servers/{i}", ptr("/channels", &key.name))),
            );
        }
    }
}

/// Component keys must match `^[a-zA-Z0-9.\-_]+$` (the 2.x schema of some versions omits this check).
fn components_keys(root: &Node, diags: &mut Vec<Diagnostic>) {
    let Some(components) = root.get("components") else {
        return;
    };
    for (section, map) in components.entries() {
        if section.name.starts_with("x-") {
            continue;
        }
        for (key, _) in map.entries() {
            let ok = !key.name.is_empty()
                && key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !ok {
                diags.push(
                    Diagnostic::error(
                        "asyncapi-components-key",
                        format!(
                            "`{}` is not a valid key in `components.{}`",
                            key.name, section.name
                        ),
                    )
                    .with_help("component keys may only use letters, digits, `.`, `-` and `_`")
                    .at(key.span, ptr(&ptr("/components", &section.name), &key.name)),
                );
            }
        }
    }
}

/// Security requirements name declared schemes; only OAuth2 and OpenID Connect take scopes.
fn security_requirements(root: &Node, version: SpecVersion, diags: &mut Vec<Diagnostic>) {
    if version.is_v3() {
        return; // 3.x references scheme objects directly; `$ref` resolution checks they exist.
    }
    let schemes = root
        .get("components")
        .and_then(|c| c.get("securitySchemes"));
    let mut places: Vec<(&Node, String, &'static str)> = Vec::new();
    if let Some(servers) = root.get("servers") {
        for (k, s) in servers.entries() {
            if let Some(sec) = s.get("security") {
                places.push((
                    sec,
                    ptr(&ptr("/servers", &k.name), "security"),
                    "asyncapi2-server-security",
                ));
            }
        }
    }
    if let Some(channels) = root.get("channels") {
        for (k, c) in channels.entries() {
            for verb in ["publish", "subscribe"] {
                if let Some(sec) = c.get(verb).and_then(|o| o.get("security")) {
                    places.push((
                        sec,
                        format!("{}/{verb}/security", ptr("/channels", &k.name)),
                        "asyncapi2-operation-security",
                    ));
                }
            }
        }
    }
    for (list, pointer, code) in places {
        for (i, req) in list.as_seq().unwrap_or(&[]).iter().enumerate() {
            for (name, scopes) in req.entries() {
                let p = ptr(&format!("{pointer}/{i}"), &name.name);
                let Some(scheme) = schemes.and_then(|s| s.get(&name.name)) else {
                    let known: Vec<&str> = schemes
                        .map(|s| s.entries().map(|(k, _)| k.name.as_str()).collect())
                        .unwrap_or_default();
                    let help = match crate::suggest::closest(&name.name, known.iter().copied()) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => "declare the scheme under `components.securitySchemes`".into(),
                    };
                    diags.push(Diagnostic::error(code, format!("the security requirement names `{}`, which is not declared in `components.securitySchemes`", name.name))
                        .with_help(help).at(name.span, p.clone()));
                    continue;
                };
                let kind = scheme
                    .get("type")
                    .and_then(Node::as_str)
                    .unwrap_or_default();
                let takes_scopes = matches!(kind, "oauth2" | "openIdConnect");
                if !takes_scopes && scopes.as_seq().is_some_and(|s| !s.is_empty()) {
                    diags.push(Diagnostic::error(code, format!("the scheme `{}` is of type `{kind}`, which has no scopes, but the requirement lists some", name.name))
                        .with_help("use an empty list `[]` for schemes other than oauth2 and openIdConnect").at(scopes.span, p.clone()));
                }
                if kind == "oauth2" {
                    let declared: Vec<String> = scheme
                        .get("flows")
                        .map(|f| {
                            f.entries()
                                .flat_map(|(_, flow)| {
                                    flow.get("scopes")
                                        .map(|s| {
                                            s.entries()
                                                .map(|(k, _)| k.name.clone())
                                                .collect::<Vec<_>>()
                                        })
                                        .unwrap_or_default()
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    for (j, scope) in scopes.as_seq().unwrap_or(&[]).iter().enumerate() {
                        if let Some(s) = scope.as_str() {
                            if !declared.iter().any(|d| d == s) {
                                diags.push(
                                    Diagnostic::warning(
                                        code,
                                        format!(
                                            "the scope `{s}` is not declared by any flow of `{}`",
                                            name.name
                                        ),
                                    )
                                    .with_help(
                                        "declare it under the scheme's `flows.<flow>.scopes`",
                                    )
                                    .at(scope.span, format!("{p}/{j}")),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Tag names must be unique within every `tags` list.
fn tags_unique(node: &Node, pointer: &str, diags: &mut Vec<Diagnostic>) {
    let mut stack = vec![(node, pointer.to_string())];
    while let Some((node, pointer)) = stack.pop() {
        match &node.value {
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    let p = ptr(&pointer, &k.name);
                    if k.name == "tags" {
                        let mut seen: HashMap<&str, u32> = HashMap::new();
                        for (i, tag) in v.as_seq().unwrap_or(&[]).iter().enumerate() {
                            if let Some(name) = tag.get("name").and_then(Node::as_str) {
                                if let Some(line) = seen.insert(name, tag.span.line) {
                                    diags.push(Diagnostic::error("asyncapi-tags-uniqueness", format!("the tag `{name}` is listed twice (first on line {line})"))
                                        .with_help("remove the duplicate tag").at(tag.span, format!("{p}/{i}")));
                                }
                            }
                        }
                    }
                    // Schemas and examples hold user data, where `tags` is just a property name.
                    if !matches!(
                        k.name.as_str(),
                        "payload"
                            | "examples"
                            | "schema"
                            | "headers"
                            | "schemas"
                            | "default"
                            | "const"
                            | "enum"
                    ) {
                        stack.push((v, p));
                    }
                }
            }
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((item, format!("{pointer}/{i}")));
                }
            }
            _ => {}
        }
    }
}

/// `operationId` (2.x) and `messageId` values are unique in the document.
fn ids_unique(root: &Node, diags: &mut Vec<Diagnostic>) {
    let Some(channels) = root.get("channels") else {
        return;
    };
    let mut op_ids: HashMap<String, u32> = HashMap::new();
    let mut message_ids: HashMap<String, (u32, usize, FileId)> = HashMap::new();
    for (k, channel) in channels.entries() {
        for verb in ["publish", "subscribe"] {
            let Some(op) = channel.get(verb) else {
                continue;
            };
            let op_pointer = format!("{}/{verb}", ptr("/channels", &k.name));
            if let Some((id, id_pointer)) = merged_v2_field(op, &op_pointer, "operationId") {
                if let Some(s) = id.as_str() {
                    if let Some(line) = op_ids.insert(s.to_string(), id.span.line) {
                        diags.push(
                            Diagnostic::error(
                                "asyncapi2-operation-operationId-uniqueness",
                                format!(
                                    "the operationId `{s}` is used twice (first on line {line})"
                                ),
                            )
                            .with_help("give every operation its own operationId")
                            .at(id.span, id_pointer),
                        );
                    }
                }
            }
            let Some(message) = op.get("message") else {
                continue;
            };
            let mut messages = vec![(message, ptr(&op_pointer, "message"))];
            if let Some(alts) = message.get("oneOf").and_then(Node::as_seq) {
                messages = alts
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m, format!("{op_pointer}/message/oneOf/{i}")))
                    .collect();
            }
            for (m, mp) in messages {
                let Some((id, id_pointer)) = merged_v2_field(m, &mp, "messageId") else {
                    continue;
                };
                let Some(s) = id.as_str() else { continue };
                // The same message reached through two `$ref`s is one message, not a duplicate
                // (copies keep their definition's span).
                let identity = (id.span.line, m.span.start, m.span.file);
                match message_ids.get(s) {
                    Some(first) if *first != identity => {
                        diags.push(Diagnostic::error("asyncapi2-message-messageId-uniqueness", format!("the messageId `{s}` is used by two different messages (first on line {})", first.0))
                            .with_help("give every message its own messageId").at(id.span, id_pointer));
                    }
                    Some(_) => {}
                    None => {
                        message_ids.insert(s.to_string(), identity);
                    }
                }
            }
        }
    }
}

/// [`model::v2_merged`] with the pointer of the value it picked.
fn merged_v2_field<'a>(object: &'a Node, pointer: &str, field: &str) -> Option<(&'a Node, String)> {
    let (value, from_trait) = crate::model::v2_merged(object, field)?;
    let pointer = match from_trait {
        Some(i) => ptr(&format!("{pointer}/traits/{i}"), field),
        None => ptr(pointer, field),
    };
    Some((value, pointer))
}

/// Visits every JSON Schema object in the document (payloads, headers, parameter schemas,
/// `components.schemas`) and its subschemas, with their pointers.
fn for_each_schema<'a>(root: &'a Node, mut f: impl FnMut(&'a Node, &str)) {
    let mut roots: Vec<(&Node, String)> = Vec::new();
    if let Some(schemas) = root.get("components").and_then(|c| c.get("schemas")) {
        for (k, s) in schemas.entries() {
            roots.push((s, ptr("/components/schemas", &k.name)));
        }
    }
    collect_message_schemas(root, "", &mut roots);
    let mut seen = std::collections::HashSet::new();
    let mut stack = roots;
    while let Some((schema, pointer)) = stack.pop() {
        if !seen.insert((schema.span.file, schema.span.start)) || schema.as_map().is_none() {
            continue;
        }
        f(schema, &pointer);
        for (k, v) in schema.entries() {
            let p = ptr(&pointer, &k.name);
            match k.name.as_str() {
                "properties" | "patternProperties" | "definitions" | "$defs"
                | "dependentSchemas" => {
                    for (name, sub) in v.entries() {
                        stack.push((sub, ptr(&p, &name.name)));
                    }
                }
                "items" | "allOf" | "anyOf" | "oneOf" | "prefixItems" => match v.as_seq() {
                    Some(items) => stack.extend(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, s)| (s, format!("{p}/{i}"))),
                    ),
                    None => stack.push((v, p)),
                },
                "additionalProperties"
                | "additionalItems"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames" => stack.push((v, p)),
                _ => {}
            }
        }
    }
}

/// Finds the schema-valued fields of messages and parameters anywhere under `channels`/`components`.
fn collect_message_schemas<'a>(root: &'a Node, _base: &str, out: &mut Vec<(&'a Node, String)>) {
    let mut stack = vec![(root, String::new())];
    while let Some((node, pointer)) = stack.pop() {
        for (k, v) in node.entries() {
            let p = ptr(&pointer, &k.name);
            match k.name.as_str() {
                // A message: its payload is a schema unless another schema format is named.
                "payload"
                    if node
                        .get("schemaFormat")
                        .and_then(Node::as_str)
                        .is_none_or(is_json_schema_format) =>
                {
                    // 3.x multi-format schema objects wrap the schema.
                    match (v.get("schemaFormat"), v.get("schema")) {
                        (Some(fmt), Some(s)) if fmt.as_str().is_some_and(is_json_schema_format) => {
                            out.push((s, ptr(&p, "schema")))
                        }
                        (Some(_), Some(_)) => {}
                        _ => out.push((v, p)),
                    }
                }
                "headers" if v.get("type").is_some() || v.get("properties").is_some() => {
                    out.push((v, p))
                }
                "schema" if pointer.contains("/parameters/") => out.push((v, p)),
                "payload" | "examples" | "x-gateway" => {}
                _ if k.name.starts_with("x-") => {}
                _ => {
                    if v.as_map().is_some() {
                        stack.push((v, p));
                    } else if let Some(items) = v.as_seq() {
                        for (i, item) in items.iter().enumerate() {
                            if item.as_map().is_some() {
                                stack.push((item, format!("{p}/{i}")));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Compiles `schema` for checking values against it; `None` when it cannot be checked in isolation
/// (an unresolved recursive `$ref`) or is not a usable schema (schema validation reports that).
pub fn value_validator(schema: &Value) -> Option<jsonschema::Validator> {
    if schema.to_string().contains("\"$ref\"") {
        return None;
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(schema)
        .ok()
}

fn first_error(validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    validator.iter_errors(value).next().map(|e| short_error(&e))
}

/// One line saying where a value fails its schema and why, without echoing the whole value.
fn short_error(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let path = e.instance_path().as_str();
    let at = if path.is_empty() {
        "the value".to_string()
    } else {
        format!("`{path}`")
    };
    let clip = |v: &Value| crate::diagnostics::clip(&v.to_string(), 60);
    match e.kind() {
        K::Required { property } => format!("{at} is missing the required property {property}"),
        K::Type { kind } => format!("{at} must be of type {}", crate::schema::type_name(kind)),
        K::Enum { options } => format!(
            "{at} is {}, not one of {}",
            clip(e.instance()),
            clip(options)
        ),
        K::Constant { expected_value } => format!("{at} must be {}", clip(expected_value)),
        K::AdditionalProperties { unexpected } => {
            format!("{at} has unexpected properties: {}", unexpected.join(", "))
        }
        K::OneOfNotValid { context } | K::AnyOf { context } => {
            // Explain with the alternative that came closest (fewest errors).
            match context
                .iter()
                .filter(|b| !b.is_empty())
                .min_by_key(|b| b.len())
                .and_then(|b| b.first())
            {
                Some(inner) => short_error(inner),
                None => format!("{at} matches none of the alternatives"),
            }
        }
        _ => {
            format!("{at}: {}", crate::diagnostics::clip(&e.to_string(), 120))
        }
    }
}

/// Schema `default` and `examples` should be valid against the schema they belong to (a warning:
/// wrong examples mislead readers and the mock backend but break no traffic, and the AsyncAPI
/// project's own examples contain some); a `discriminator` property must be required.
fn schema_values(root: &Node, diags: &mut Vec<Diagnostic>) {
    for_each_schema(root, |schema, pointer| {
        if let Some(disc) = schema.get("discriminator").and_then(Node::as_str) {
            let required = schema.get("required").and_then(Node::as_seq).unwrap_or(&[]);
            if !required.iter().any(|r| r.as_str() == Some(disc)) {
                diags.push(
                    Diagnostic::error(
                        "asyncapi-schema-discriminator",
                        format!(
                            "the discriminator `{disc}` must be a required property of its schema"
                        ),
                    )
                    .with_help(format!("add `{disc}` to this schema's `required` list"))
                    .at(
                        schema
                            .get("discriminator")
                            .map(|d| d.span)
                            .unwrap_or(schema.span),
                        ptr(pointer, "discriminator"),
                    ),
                );
            }
        }
        let has_default = schema.get("default").is_some();
        let examples = schema.get("examples").and_then(Node::as_seq);
        if !has_default && examples.is_none_or(|e| e.is_empty()) {
            return;
        }
        let mut json = schema.to_json();
        if let Value::Object(map) = &mut json {
            map.remove("default");
            map.remove("examples");
        }
        let Some(validator) = value_validator(&json) else {
            return;
        };
        if let Some(d) = schema.get("default") {
            if let Some(why) = first_error(&validator, &d.to_json()) {
                diags.push(
                    Diagnostic::warning(
                        "asyncapi-schema-default",
                        format!("the `default` is not valid against its schema: {why}"),
                    )
                    .with_help("change the default so that the schema accepts it")
                    .at(d.span, ptr(pointer, "default")),
                );
            }
        }
        for (i, ex) in examples.unwrap_or(&[]).iter().enumerate() {
            if let Some(why) = first_error(&validator, &ex.to_json()) {
                diags.push(
                    Diagnostic::warning(
                        "asyncapi-schema-examples",
                        format!("this example is not valid against its schema: {why}"),
                    )
                    .with_help("fix the example or the schema")
                    .at(ex.span, format!("{pointer}/examples/{i}")),
                );
            }
        }
    });
}

/// Message (and message trait) examples: only the allowed keys, and payload/headers valid against
/// the message's schemas.
fn message_examples(root: &Node, version: SpecVersion, diags: &mut Vec<Diagnostic>) {
    let mut messages: Vec<(&Node, String, bool)> = Vec::new();
    let mut stack = vec![(root, String::new())];
    while let Some((node, pointer)) = stack.pop() {
        for (k, v) in node.entries() {
            let p = ptr(&pointer, &k.name);
            match k.name.as_str() {
                "message" if !version.is_v3() => match v.get("oneOf").and_then(Node::as_seq) {
                    Some(alts) => messages.extend(
                        alts.iter()
                            .enumerate()
                            .map(|(i, m)| (m, format!("{p}/oneOf/{i}"), false)),
                    ),
                    None => messages.push((v, p, false)),
                },
                "messages" => messages.extend(
                    v.entries()
                        .map(|(name, m)| (m, ptr(&p, &name.name), false))
                        .chain(
                            v.as_seq()
                                .unwrap_or(&[])
                                .iter()
                                .enumerate()
                                .map(|(i, m)| (m, format!("{p}/{i}"), false)),
                        ),
                ),
                "messageTraits" => {
                    messages.extend(v.entries().map(|(name, m)| (m, ptr(&p, &name.name), true)))
                }
                "payload" | "schemas" | "examples" | "x-gateway" => {}
                _ if v.as_map().is_some() => stack.push((v, p)),
                _ => {}
            }
        }
    }
    // The official parser rejects a 2.x example its schema refuses; it does not check 3.x
    // examples, and the AsyncAPI project's own 3.x examples contain such mismatches.
    let mismatch = |message: String| {
        if version.is_v3() {
            Diagnostic::warning("asyncapi-message-examples", message)
        } else {
            Diagnostic::error("asyncapi-message-examples", message)
        }
    };
    // A message is checked once, at its first pointer: prefer where it is defined (a channel's
    // `messages`, `components`) over an operation's reference to it.
    messages.sort_by_key(|(_, pointer, _)| pointer.starts_with("/operations"));
    let mut seen = std::collections::HashSet::new();
    for (message, pointer, is_trait) in messages {
        if !seen.insert((message.span.file, message.span.start)) {
            continue;
        }
        let mut all = vec![(message, pointer.clone())];
        for (i, t) in message
            .get("traits")
            .and_then(Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            all.push((t, format!("{pointer}/traits/{i}")));
        }
        let payload_validator = if is_trait {
            None
        } else {
            message
                .get("payload")
                .filter(|_| {
                    message
                        .get("schemaFormat")
                        .and_then(Node::as_str)
                        .is_none_or(is_json_schema_format)
                })
                .and_then(|p| value_validator(&p.to_json()))
        };
        let headers_validator = if is_trait {
            None
        } else {
            message
                .get("headers")
                .and_then(|h| value_validator(&h.to_json()))
        };
        for (holder, holder_pointer) in all {
            for (i, ex) in holder
                .get("examples")
                .and_then(Node::as_seq)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let ep = format!("{holder_pointer}/examples/{i}");
                let allowed: &[&str] = if version == SpecVersion::V2_0 {
                    &["headers", "payload"]
                } else {
                    &["headers", "payload", "name", "summary"]
                };
                for (k, _) in ex.entries() {
                    if !allowed.contains(&k.name.as_str()) && !k.name.starts_with("x-") {
                        diags.push(Diagnostic::error("asyncapi-message-examples", format!("a message example may only have {}; `{}` is not one of them", allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "), k.name))
                            .with_help("put the example value under `payload` (and headers under `headers`)").at(k.span, ptr(&ep, &k.name)));
                    }
                }
                if let (Some(v), Some(payload)) = (&payload_validator, ex.get("payload")) {
                    if let Some(why) = first_error(v, &payload.to_json()) {
                        diags.push(mismatch(format!("this example's payload is not valid against the message's payload schema: {why}"))
                            .with_help("fix the example or the payload schema").at(payload.span, ptr(&ep, "payload")));
                    }
                }
                if let (Some(v), Some(headers)) = (&headers_validator, ex.get("headers")) {
                    if let Some(why) = first_error(v, &headers.to_json()) {
                        diags.push(mismatch(format!("this example's headers are not valid against the message's headers schema: {why}"))
                            .with_help("fix the example or the headers schema").at(headers.span, ptr(&ep, "headers")));
                    }
                }
            }
        }
    }
}

/// Style: not errors, but worth fixing.
fn style(root: &Node, diags: &mut Vec<Diagnostic>) {
    if let Some((info_key, info)) = root.entry("info") {
        if info.get("description").is_none() {
            diags.push(
                Diagnostic::info("info-description", "the API has no `info.description`")
                    .with_help("describe the API in a sentence or two; it opens the generated docs")
                    .at(info_key.span, "/info"),
            );
        }
    }
    if let Some(channels) = root.get("channels") {
        for (k, c) in channels.entries() {
            let address = c.get("address").and_then(Node::as_str).unwrap_or(&k.name);
            if address.len() > 1 && address.ends_with('/') {
                diags.push(
                    Diagnostic::warning(
                        "channel-trailing-slash",
                        format!("the channel address `{address}` ends with `/`"),
                    )
                    .with_help("drop the trailing slash; clients rarely type it")
                    .at(k.span, ptr("/channels", &k.name)),
                );
            }
        }
    }
}
