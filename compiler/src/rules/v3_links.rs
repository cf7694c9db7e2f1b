//! AsyncAPI 3 links between objects: an operation names its channel and that channel's messages, a
//! reply names its channel and that channel's messages, a channel names its servers. The
//! specification makes every such link a Reference Object (`{$ref: ...}`), never a name or an inline
//! copy, and requires each link to stay inside what it links to (an operation's messages are a
//! subset of its channel's).
//!
//! These checks compare *where* references point, so they read the raw (unresolved) trees through
//! [`refs::target_of`]. Each channel, operation and reply definition is checked once, where it is
//! written, however many times it is referenced.

use std::collections::HashSet;

use crate::diagnostics::Diagnostic;
use crate::files::Files;
use crate::refs::{self, Target};
use crate::source::{escape_pointer_token, FileId, Node};

fn ptr(parent: &str, key: &str) -> String {
    format!("{parent}/{}", escape_pointer_token(key))
}

/// A channel, operation or reply as it is written: its node and where it is defined.
struct Definition<'a> {
    /// The operation or channel key that led here (for messages).
    name: String,
    node: &'a Node,
    file: FileId,
    pointer: String,
}

/// The definitions `node` (in `file` at `pointer`) stands for: itself, or where its `$ref` leads.
fn definition<'a>(
    files: &'a Files,
    name: &str,
    node: &'a Node,
    file: FileId,
    pointer: String,
) -> Option<Definition<'a>> {
    if refs::ref_of(node).is_none() {
        return Some(Definition {
            name: name.to_string(),
            node,
            file,
            pointer,
        });
    }
    let target = refs::target_of(files, node)?;
    let node = files.tree(target.file)?.pointer(&target.pointer)?;
    Some(Definition {
        name: name.to_string(),
        node,
        file: target.file,
        pointer: target.pointer,
    })
}

/// Every channel, operation and reply definition the document `file` reaches from its
/// `channels`, `operations` and `components`, each once.
struct Definitions<'a> {
    channels: Vec<Definition<'a>>,
    operations: Vec<Definition<'a>>,
    /// Replies, with the channel of the operation they belong to (a reply without its own
    /// `channel` travels on the operation's).
    replies: Vec<(Definition<'a>, Option<&'a Node>)>,
}

fn definitions<'a>(files: &'a Files, file: FileId) -> Option<Definitions<'a>> {
    let raw = files.tree(file)?;
    let mut seen = HashSet::new();
    let mut out = Definitions {
        channels: Vec::new(),
        operations: Vec::new(),
        replies: Vec::new(),
    };
    let collect = |section: &str, into: &mut Vec<Definition<'a>>, seen: &mut HashSet<_>| {
        for base in ["", "/components"] {
            let p = format!("{base}/{section}");
            for (key, node) in raw
                .pointer(&p)
                .map(|n| n.entries().collect())
                .unwrap_or_else(Vec::new)
            {
                if let Some(d) = definition(files, &key.name, node, file, ptr(&p, &key.name)) {
                    if seen.insert((d.file, d.node.span.start)) {
                        into.push(d);
                    }
                }
            }
        }
    };
    collect("channels", &mut out.channels, &mut seen);
    collect("operations", &mut out.operations, &mut seen);
    let mut reply_defs = Vec::new();
    collect("replies", &mut reply_defs, &mut seen);
    // `replies` only exists under `components`; the base "" finds nothing there.
    out.replies
        .extend(reply_defs.into_iter().map(|d| (d, None::<&Node>)));
    for op in &out.operations {
        let Some(reply) = op.node.get("reply") else {
            continue;
        };
        let name = format!("{} (reply)", op.name);
        if let Some(d) = definition(files, &name, reply, op.file, ptr(&op.pointer, "reply")) {
            match out
                .replies
                .iter_mut()
                .find(|(r, _)| (r.file, r.node.span.start) == (d.file, d.node.span.start))
            {
                // A component reply used by an operation: check it against that operation's channel.
                Some(known) => known.1 = known.1.or(op.node.get("channel")),
                None => {
                    seen.insert((d.file, d.node.span.start));
                    out.replies.push((d, op.node.get("channel")));
                }
            }
        }
    }
    Some(out)
}

pub fn check(files: &Files, file: FileId, diags: &mut Vec<Diagnostic>) {
    let Some(defs) = definitions(files, file) else {
        return;
    };
    for channel in &defs.channels {
        channel_servers(files, channel, diags);
    }
    for op in &defs.operations {
        let channel = op.node.get("channel");
        if let Some(c) = channel {
            reference_required(
                c,
                &ptr(&op.pointer, "channel"),
                "an operation's `channel`",
                &|name| format!("#/channels/{name}"),
                diags,
            );
        }
        link_messages(files, op, channel, Link::Operation, diags);
    }
    for (reply, operation_channel) in &defs.replies {
        let own = reply.node.get("channel");
        if let Some(c) = own {
            reference_required(
                c,
                &ptr(&reply.pointer, "channel"),
                "a reply's `channel`",
                &|name| format!("#/channels/{name}"),
                diags,
            );
        }
        link_messages(files, reply, own.or(*operation_channel), Link::Reply, diags);
    }
}

/// A link that must be a Reference Object: a `$ref`, not a name or an inline copy.
/// `reference` spells the `$ref` a bare name probably meant.
fn reference_required(
    node: &Node,
    pointer: &str,
    what: &str,
    reference: &dyn Fn(&str) -> String,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if refs::ref_of(node).is_some() {
        return true;
    }
    let help = match node.as_str() {
        Some(name) => format!(
            "AsyncAPI 3 links objects with `$ref`: write `$ref: '{}'`",
            reference(&escape_pointer_token(name))
        ),
        None => "define the object once (under `channels`, in a channel's `messages`, or under `components`) and link it with `$ref`".to_string(),
    };
    diags.push(
        Diagnostic::error(
            "schema",
            format!(
                "{what} must be a Reference Object (`$ref: ...`), not {}",
                describe(node)
            ),
        )
        .with_help(help)
        .at(node.span, pointer.to_string()),
    );
    false
}

fn describe(node: &Node) -> String {
    match node.as_str() {
        Some(s) => format!("the name `{s}`"),
        None => format!("an inline {}", node.type_name()),
    }
}

/// A channel's `servers`: Reference Objects to servers of the document the channel is written in.
fn channel_servers(files: &Files, channel: &Definition<'_>, diags: &mut Vec<Diagnostic>) {
    let Some(raw) = files.tree(channel.file) else {
        return;
    };
    for (i, s) in channel
        .node
        .get("servers")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let item_pointer = format!("{}/servers/{i}", channel.pointer);
        let Some(r) = refs::ref_of(s) else {
            let help = match s.as_str() {
                Some(name) if raw.pointer(&ptr("/servers", name)).is_some() => {
                    format!("write `- $ref: '#/servers/{}'`", escape_pointer_token(name))
                }
                _ => "reference a server of this document as `- $ref: '#/servers/<name>'`".into(),
            };
            diags.push(
                Diagnostic::error(
                    "asyncapi3-channel-servers",
                    format!(
                        "channel `{}` lists {} in `servers`; AsyncAPI 3 lists servers as Reference Objects",
                        channel.name,
                        describe(s)
                    ),
                )
                .with_help(help)
                .at(s.span, item_pointer),
            );
            continue;
        };
        // The first hop must name a server of this document; that server may itself be a `$ref`.
        let text = r.as_str().unwrap_or_default();
        let ok = text.strip_prefix("#/servers/").is_some_and(|name| {
            !name.contains('/') && raw.pointer(&format!("/servers/{name}")).is_some()
        });
        if !ok {
            diags.push(
                Diagnostic::error(
                    "asyncapi3-channel-servers",
                    format!(
                        "channel `{}` lists a server that is not defined in this document's `servers`",
                        channel.name
                    ),
                )
                .with_help("reference a server as `#/servers/<name>`")
                .at(r.span, format!("{item_pointer}/$ref")),
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Operation,
    Reply,
}

/// An operation's (or reply's) `messages` are Reference Objects to messages of its channel,
/// written through the channel (`#/channels/<id>/messages/<name>`).
///
/// A reference that reaches the same definition another way (straight into `components`, or
/// through another channel whose message is the same component) is a warning: the gateway serves
/// it correctly, but the specification says the link goes through the channel and the official
/// parser rejects it.
fn link_messages(
    files: &Files,
    holder: &Definition<'_>,
    channel: Option<&Node>,
    link: Link,
    diags: &mut Vec<Diagnostic>,
) {
    let (code, whose) = match link {
        Link::Operation => (
            "asyncapi3-operation-messages-from-referred-channel",
            format!("operation `{}`", holder.name),
        ),
        Link::Reply => (
            "asyncapi3-reply-messages-from-referred-channel",
            format!(
                "the reply of `{}`",
                holder.name.trim_end_matches(" (reply)")
            ),
        ),
    };
    // How the holder spells its channel (`#/channels/room`), to suggest message references.
    let spelling = channel
        .and_then(refs::ref_of)
        .and_then(Node::as_str)
        .filter(|t| t.starts_with('#'))
        .map(str::to_string);
    let channel = channel.and_then(|c| refs::target_of(files, c));
    for (i, m) in holder
        .node
        .get("messages")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let item_pointer = format!("{}/messages/{i}", holder.pointer);
        let what = match link {
            Link::Operation => "an operation's `messages` entry",
            Link::Reply => "a reply's `messages` entry",
        };
        let through = spelling.as_deref().unwrap_or("#/channels/<channel>");
        if !reference_required(
            m,
            &item_pointer,
            what,
            &|name| format!("{through}/messages/{name}"),
            diags,
        ) {
            continue;
        }
        let Some(channel) = &channel else { continue };
        let Some(r) = refs::ref_of(m) else { continue };
        let Some(text) = r.as_str() else { continue };
        if written_through_channel(files, m, text, channel) {
            continue;
        }
        let spelling = spelling
            .clone()
            .unwrap_or_else(|| format!("#{}", channel.pointer));
        match same_definition_as_channel_message(files, m, channel) {
            Some(name) => diags.push(
                Diagnostic::warning(
                    code,
                    format!(
                        "{whose} references its channel's message as `{text}` instead of through the channel"
                    ),
                )
                .with_help(format!(
                    "write `$ref: '{spelling}/messages/{}'` (the same definition; AsyncAPI 3 says the link goes through the channel, and the official parser rejects this spelling)",
                    escape_pointer_token(&name)
                ))
                .at(r.span, format!("{item_pointer}/$ref")),
            ),
            None => diags.push(
                Diagnostic::error(
                    code,
                    format!("{whose} uses a message that is not one of its channel's messages: `{text}`"),
                )
                .with_help(format!(
                    "reference the message through the channel, e.g. `{spelling}/messages/<name>`, or add it to the channel's `messages`"
                ))
                .at(r.span, format!("{item_pointer}/$ref")),
            ),
        }
    }
}

/// Whether the reference is spelled `<channel>/messages/<name>`, where `<channel>` leads to the
/// holder's channel (directly, or through the `$ref`s it crosses).
fn written_through_channel(files: &Files, m: &Node, text: &str, channel: &Target) -> bool {
    let (file_part, fragment) = text.split_once('#').unwrap_or((text, ""));
    let Some((prefix, name)) = fragment.rsplit_once('/') else {
        return false;
    };
    let Some(channel_pointer) = prefix.strip_suffix("/messages") else {
        return false;
    };
    if name.is_empty() {
        return false;
    }
    let ref_file = if file_part.is_empty() {
        Some(m.span.file)
    } else {
        let base = files
            .path(m.span.file)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        files
            .sources
            .lookup(&crate::files::normalize(&base.join(file_part)))
    };
    let Some(file) = ref_file else { return false };
    let written = Target {
        file,
        pointer: channel_pointer.to_string(),
    };
    written == *channel || refs::follow(files, &written).as_ref() == Some(channel)
}

/// The name of the channel's message that is the same definition as `m` (through the `$ref`s the
/// pointers cross, and chains of them), if any.
fn same_definition_as_channel_message(files: &Files, m: &Node, channel: &Target) -> Option<String> {
    let wanted = refs::target_of(files, m)?;
    let messages = files
        .tree(channel.file)?
        .pointer(&channel.pointer)?
        .get("messages")?;
    messages.entries().find_map(|(name, _)| {
        let own = Target {
            file: channel.file,
            pointer: ptr(&format!("{}/messages", channel.pointer), &name.name),
        };
        (refs::follow(files, &own).as_ref() == Some(&wanted)).then(|| name.name.clone())
    })
}
