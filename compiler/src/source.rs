//! Spec files → node trees that remember where every node came from.
//!
//! Every later stage (schema validation, rules, the plan) reports problems against the exact key or
//! value that caused them, so the tree keeps a [`Span`] on each node and on each mapping key. YAML and
//! JSON go through the same YAML 1.2 event parser (`saphyr-parser`, chosen because it is maintained, has
//! no `unsafe` serde magic and reports a span on every event; `serde_yaml` is deprecated and drops
//! positions).
//!
//! The builder is iterative and bounded, so hostile input cannot exhaust the stack or the memory:
//! nesting deeper than [`Limits::max_depth`] and alias expansion beyond [`Limits::max_nodes`]
//! ("billion laughs") are refused with a diagnostic instead of being built.
//!
//! ```
//! use portico_compiler::source::{parse_text, FileId, Limits};
//! let (node, problems) = parse_text(FileId(0), "a: [1, two]\n", &Limits::default());
//! assert!(problems.is_empty());
//! let node = node.unwrap();
//! let two = node.pointer("/a/1").unwrap();
//! assert_eq!(two.as_str(), Some("two"));
//! assert_eq!((two.span.line, two.span.col), (1, 8));
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};
use serde_json::{Map, Number, Value};

/// Index of a file in a [`SourceMap`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// Where a node starts: file, 1-based line and column (in characters), and byte range for excerpts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    /// Byte offset of the start in the file's text.
    pub start: usize,
    /// Byte length (at least 1 where the text has a character there), for carets.
    pub len: usize,
}

/// A parsed YAML/JSON value with its position. Mapping keys keep their own span, because a problem
/// with a key (duplicate, unknown, misspelt) must point at the key, not at its value.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: NodeValue,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// Limits that keep parsing bounded in time and memory whatever the input.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest file read, in bytes. Larger files are refused before being read.
    pub max_file_bytes: u64,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes in one file after alias expansion, and in one document after `$ref` expansion.
    pub max_nodes: usize,
    /// Most memory (estimated, in bytes) that YAML aliases may add to one file, counting the copies
    /// kept for anchors. Checked before copying, so a refused "billion laughs" costs about this.
    pub max_alias_bytes: u64,
    /// Most memory (estimated, in bytes) one document may take once its `$ref`s are resolved.
    pub max_resolved_bytes: u64,
    /// Most files one compilation reads (spec files and `$ref` targets).
    pub max_files: usize,
    /// Most bytes one compilation reads, all files together.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 16 * 1024 * 1024,
            max_depth: 256,
            max_nodes: 2_000_000,
            max_alias_bytes: 8 * 1024 * 1024,
            max_resolved_bytes: 256 * 1024 * 1024,
            max_files: 10_000,
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A problem found while reading or parsing one file (before any AsyncAPI meaning is known).
#[derive(Clone, Debug)]
pub struct ParseProblem {
    pub code: &'static str,
    pub message: String,
    pub help: String,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            NodeValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value under `key` of a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, v)| (k, v))
    }

    /// Mapping entries (empty for anything that is not a mapping).
    pub fn entries(&self) -> impl Iterator<Item = (&Key, &Node)> {
        self.as_map().unwrap_or(&[]).iter().map(|(k, v)| (k, v))
    }

    /// Follows an RFC 6901 JSON pointer (`""` is the node itself).
    pub fn pointer(&self, pointer: &str) -> Option<&Node> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        let mut node = self;
        for token in rest.split('/') {
            let token = unescape_pointer_token(token);
            node = match &node.value {
                NodeValue::Map(_) => node.get(&token)?,
                NodeValue::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Like [`Node::pointer`], but also returns the span of the key the last token named, so that a
    /// diagnostic about a property can underline the property's name.
    pub fn pointer_key_span(&self, pointer: &str) -> Option<Span> {
        let (parent, last) = pointer.rsplit_once('/')?;
        let parent = self.pointer(parent)?;
        parent
            .entry(&unescape_pointer_token(last))
            .map(|(k, _)| k.span)
    }

    /// Converts to a JSON value (for JSON Schema validation and for the plan).
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => Value::Number(n.clone()),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.name.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// Number of nodes in this subtree (used to bound alias and `$ref` expansion).
    pub fn count(&self) -> usize {
        let mut total = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            total += 1;
            match &node.value {
                NodeValue::Seq(items) => stack.extend(items.iter()),
                NodeValue::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
                _ => {}
            }
        }
        total
    }

    /// Estimated memory of this node alone (its own string and key, not its children), in bytes.
    pub fn own_bytes(&self) -> u64 {
        let own = match &self.value {
            NodeValue::String(s) => s.len(),
            NodeValue::Map(entries) => entries
                .iter()
                .map(|(k, _)| std::mem::size_of::<Key>() + k.name.len())
                .sum(),
            _ => 0,
        };
        (std::mem::size_of::<Node>() + own) as u64
    }

    /// Number of nodes in this subtree and their estimated memory in bytes.
    pub fn weight(&self) -> (usize, u64) {
        let (mut count, mut bytes) = (0, 0);
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            count += 1;
            bytes += node.own_bytes();
            match &node.value {
                NodeValue::Seq(items) => stack.extend(items.iter()),
                NodeValue::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
                _ => {}
            }
        }
        (count, bytes)
    }

    /// Short name of the value's type, as users would say it.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Number(_) => "number",
            NodeValue::String(_) => "string",
            NodeValue::Seq(_) => "array",
            NodeValue::Map(_) => "object",
        }
    }
}

impl Drop for Node {
    // A 10,000-deep tree dropped recursively would overflow the stack; take children iteratively.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        take_children(&mut self.value, &mut stack);
        while let Some(mut node) = stack.pop() {
            take_children(&mut node.value, &mut stack);
        }
    }
}

fn take_children(value: &mut NodeValue, stack: &mut Vec<Node>) {
    match value {
        NodeValue::Seq(items) if !items.is_empty() => stack.append(items),
        NodeValue::Map(entries) if !entries.is_empty() => {
            stack.extend(std::mem::take(entries).into_iter().map(|(_, v)| v))
        }
        _ => {}
    }
}

/// Decodes one JSON pointer token (`~1` → `/`, `~0` → `~`).
pub fn unescape_pointer_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Encodes one JSON pointer token.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Byte offsets where lines start. Like the YAML parser, `\n`, `\r\n` and a lone `\r` each end a
/// line, so that reported lines and columns match the parser's.
pub fn line_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            starts.push(i + 1);
        }
    }
    starts
}

/// One file's text with a line index, for turning positions into excerpts.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as given by the user (relative paths stay relative), for messages.
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        let line_starts = line_starts(&text);
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// Byte offset of a 1-based line and 1-based character column.
    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// Number of lines.
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    pub fn offset(&self, line: u32, col: u32) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1) as usize) else {
            return self.text.len();
        };
        let line_text = &self.text[start..];
        let chars = col.saturating_sub(1) as usize;
        start
            + line_text
                .char_indices()
                .nth(chars)
                .map(|(i, _)| i)
                .unwrap_or(line_text.len())
    }
}

/// All files read in one compilation, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    by_path: HashMap<PathBuf, FileId>,
}

impl SourceMap {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.by_path.insert(path.clone(), id);
        self.files.push(SourceFile::new(path, text));
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn lookup(&self, path: &Path) -> Option<FileId> {
        self.by_path.get(path).copied()
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
}

/// Parses YAML or JSON text into a node tree. Returns the tree (if one document could be built) and
/// every problem found. Never panics, whatever the bytes.
pub fn parse_text(file: FileId, text: &str, limits: &Limits) -> (Option<Node>, Vec<ParseProblem>) {
    let mut builder = TreeBuilder::new(file, text, limits);
    match builder.run() {
        Ok(root) => (root, builder.problems),
        Err(problem) => {
            builder.problems.push(problem);
            (None, builder.problems)
        }
    }
}

/// Frames of containers being built.
enum Frame {
    Seq {
        span: Span,
        items: Vec<Node>,
        anchor: usize,
    },
    Map {
        span: Span,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        anchor: usize,
        /// Key → line of first use, built once the mapping is large (duplicate-key check).
        index: Option<HashMap<String, u32>>,
    },
}

struct TreeBuilder<'a> {
    file: FileId,
    text: &'a str,
    limits: &'a Limits,
    problems: Vec<ParseProblem>,
    /// Anchored nodes with their weight (nodes, estimated bytes), so that an alias is priced
    /// before it is copied.
    anchors: HashMap<usize, (Node, usize, u64)>,
    nodes: usize,
    alias_bytes: u64,
    /// Byte offsets of line starts, to turn (line, col) markers into byte offsets cheaply.
    line_starts: Vec<usize>,
}

impl<'a> TreeBuilder<'a> {
    fn new(file: FileId, text: &'a str, limits: &'a Limits) -> Self {
        let line_starts = line_starts(text);
        TreeBuilder {
            file,
            text,
            limits,
            problems: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            alias_bytes: 0,
            line_starts,
        }
    }

    fn span(&self, yaml: &YamlSpan) -> Span {
        let line = yaml.start.line().max(1);
        let col = yaml.start.col();
        let start = self
            .line_starts
            .get(line - 1)
            .map(|&ls| {
                let rest = &self.text[ls..];
                ls + rest
                    .char_indices()
                    .nth(col)
                    .map(|(i, _)| i)
                    .unwrap_or(rest.len())
            })
            .unwrap_or(self.text.len());
        let chars = yaml.end.index().saturating_sub(yaml.start.index()).max(1);
        let len = self.text[start..]
            .char_indices()
            .nth(chars)
            .map(|(i, _)| i)
            .unwrap_or(self.text.len() - start);
        Span {
            file: self.file,
            line: line as u32,
            col: col as u32 + 1,
            start,
            len: len.max(1).min(self.text.len().saturating_sub(start).max(1)),
        }
    }

    fn problem(&self, code: &'static str, message: String, help: &str, span: Span) -> ParseProblem {
        ParseProblem {
            code,
            message,
            help: help.to_string(),
            span,
        }
    }

    fn run(&mut self) -> Result<Option<Node>, ParseProblem> {
        let mut parser = Parser::new_from_str(self.text);
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Node> = None;
        let mut documents = 0;
        loop {
            let (event, yspan) = match parser.next_event() {
                None => break,
                Some(Ok(pair)) => pair,
                Some(Err(e)) => {
                    let m = e.marker();
                    let yspan = YamlSpan::new(*m, *m);
                    let span = self.span(&yspan);
                    if e.info().contains("recursion limit") {
                        return Err(self.problem(
                            "yaml-too-deep",
                            "the document nests too deeply to be read".into(),
                            "no AsyncAPI document needs this depth; flatten it or move parts into components",
                            span,
                        ));
                    }
                    return Err(self.problem(
                        "syntax",
                        format!("this is not valid YAML or JSON: {}", e.info()),
                        "fix the syntax at the marked position (check indentation, quotes and brackets)",
                        span,
                    ));
                }
            };
            let span = self.span(&yspan);
            let finished: Option<Node> = match event {
                Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.problem(
                            "yaml-multiple-documents",
                            "the file holds more than one YAML document".into(),
                            "keep one AsyncAPI document per file; remove the extra `---` section",
                            span,
                        ));
                    }
                    None
                }
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some((node, count, bytes)) => {
                        // Priced before copying: a refused bomb costs no more than the limits.
                        self.nodes += count;
                        self.alias_bytes += bytes;
                        let over = if self.nodes > self.limits.max_nodes {
                            Some(format!("beyond {} nodes", self.limits.max_nodes))
                        } else if self.alias_bytes > self.limits.max_alias_bytes {
                            Some(format!(
                                "by more than {} MiB",
                                self.limits.max_alias_bytes / (1024 * 1024)
                            ))
                        } else {
                            None
                        };
                        if let Some(over) = over {
                            return Err(self.problem(
                                "yaml-too-large",
                                format!("aliases expand this document {over}"),
                                "this looks like an alias bomb (\"billion laughs\"); write the values out or use `$ref`",
                                span,
                            ));
                        }
                        let mut node = node.clone();
                        node.span = span;
                        Some(node)
                    }
                    None => {
                        return Err(self.problem(
                            "syntax",
                            "this alias names an anchor that is not defined before it".into(),
                            "define the anchor (`&name`) before using it (`*name`)",
                            span,
                        ))
                    }
                },
                Event::Scalar(value, style, anchor, tag) => {
                    self.count_node(span)?;
                    self.check_tag(tag.as_deref(), span);
                    let tag_suffix = tag.as_ref().map(|t| t.suffix.clone());
                    let node = Node {
                        value: resolve_scalar(&value, style, tag_suffix.as_deref()),
                        span,
                    };
                    if anchor > 0 {
                        let bytes = node.own_bytes();
                        self.anchors.insert(anchor, (node.clone(), 1, bytes));
                    }
                    Some(node)
                }
                Event::SequenceStart(anchor, tag) => {
                    self.count_node(span)?;
                    self.check_tag(tag.as_deref(), span);
                    self.check_depth(stack.len(), span)?;
                    stack.push(Frame::Seq {
                        span,
                        items: Vec::new(),
                        anchor,
                    });
                    None
                }
                Event::MappingStart(anchor, tag) => {
                    self.count_node(span)?;
                    self.check_tag(tag.as_deref(), span);
                    self.check_depth(stack.len(), span)?;
                    stack.push(Frame::Map {
                        span,
                        entries: Vec::new(),
                        pending_key: None,
                        anchor,
                        index: None,
                    });
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, anchor) = match stack.pop() {
                        Some(Frame::Seq {
                            span,
                            items,
                            anchor,
                        }) => (
                            Node {
                                value: NodeValue::Seq(items),
                                span,
                            },
                            anchor,
                        ),
                        Some(Frame::Map {
                            span,
                            entries,
                            anchor,
                            ..
                        }) => (
                            Node {
                                value: NodeValue::Map(entries),
                                span,
                            },
                            anchor,
                        ),
                        None => continue,
                    };
                    if anchor > 0 {
                        // The anchor's copy costs memory too, and may hold expanded aliases.
                        let (count, bytes) = node.weight();
                        self.alias_bytes += bytes;
                        if self.alias_bytes > self.limits.max_alias_bytes {
                            return Err(self.problem(
                                "yaml-too-large",
                                format!(
                                    "aliases expand this document by more than {} MiB",
                                    self.limits.max_alias_bytes / (1024 * 1024)
                                ),
                                "this looks like an alias bomb (\"billion laughs\"); write the values out or use `$ref`",
                                node.span,
                            ));
                        }
                        self.anchors.insert(anchor, (node.clone(), count, bytes));
                    }
                    Some(node)
                }
            };
            if let Some(node) = finished {
                match stack.last_mut() {
                    None => root = Some(node),
                    Some(Frame::Seq { items, .. }) => items.push(node),
                    Some(Frame::Map {
                        entries,
                        pending_key,
                        index,
                        ..
                    }) => match pending_key.take() {
                        None => {
                            let name = match &node.value {
                                NodeValue::String(s) => s.clone(),
                                NodeValue::Null => "null".to_string(),
                                NodeValue::Bool(b) => b.to_string(),
                                NodeValue::Number(n) => n.to_string(),
                                NodeValue::Seq(_) | NodeValue::Map(_) => return Err(self.problem(
                                    "yaml-complex-key",
                                    "a mapping key must be a plain value, not a list or mapping"
                                        .into(),
                                    "use a string as the key",
                                    node.span,
                                )),
                            };
                            // Large mappings get an index so that the check stays linear.
                            if entries.len() == 16 && index.is_none() {
                                *index = Some(
                                    entries
                                        .iter()
                                        .map(|(k, _)| (k.name.clone(), k.span.line))
                                        .collect(),
                                );
                            }
                            let first_line = match index {
                                Some(ix) => ix.get(&name).copied(),
                                None => entries
                                    .iter()
                                    .find(|(k, _)| k.name == name)
                                    .map(|(k, _)| k.span.line),
                            };
                            if let Some(ix) = index {
                                ix.entry(name.clone()).or_insert(node.span.line);
                            }
                            if let Some(first_line) = first_line {
                                let problem = self.problem(
                                    "yaml-duplicate-key",
                                    format!("the key `{name}` appears twice in this mapping (first on line {first_line})"),
                                    "remove or rename one of them; parsers disagree on which one wins",
                                    node.span,
                                );
                                self.problems.push(problem);
                            }
                            *pending_key = Some(Key {
                                name,
                                span: node.span,
                            });
                        }
                        Some(key) => entries.push((key, node)),
                    },
                }
            }
        }
        Ok(root)
    }

    /// JSON has no tags; of YAML's, only the core schema's make sense in an AsyncAPI document.
    fn check_tag(&mut self, tag: Option<&saphyr_parser::Tag>, span: Span) {
        let Some(tag) = tag else { return };
        let core = tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:";
        let known = matches!(
            tag.suffix.as_str(),
            "str" | "int" | "float" | "bool" | "null" | "map" | "seq"
        );
        if (core && known) || (tag.handle == "!" && tag.suffix.is_empty()) {
            return;
        }
        let problem = self.problem(
            "yaml-unknown-tag",
            format!(
                "the YAML tag `{}{}` has no meaning in an AsyncAPI document",
                tag.handle, tag.suffix
            ),
            "remove the tag; AsyncAPI documents are plain JSON-compatible data",
            span,
        );
        self.problems.push(problem);
    }

    fn count_node(&mut self, span: Span) -> Result<(), ParseProblem> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.problem(
                "yaml-too-large",
                format!("the document has more than {} nodes", self.limits.max_nodes),
                "split the document into files joined with `$ref`",
                span,
            ));
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize, span: Span) -> Result<(), ParseProblem> {
        if depth >= self.limits.max_depth {
            return Err(self.problem(
                "yaml-too-deep",
                format!(
                    "the document nests deeper than {} levels",
                    self.limits.max_depth
                ),
                "no AsyncAPI document needs this depth; flatten it or move parts into components",
                span,
            ));
        }
        Ok(())
    }
}

/// YAML 1.2 core schema resolution of a scalar (JSON-compatible: `.inf`/`.nan` stay strings).
fn resolve_scalar(value: &str, style: ScalarStyle, tag: Option<&str>) -> NodeValue {
    match tag {
        Some("str") => return NodeValue::String(value.to_string()),
        Some("null") => return NodeValue::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return NodeValue::String(value.to_string());
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_number(value) {
        return NodeValue::Number(n);
    }
    NodeValue::String(value.to_string())
}

fn parse_number(value: &str) -> Option<Number> {
    let bytes = value.as_bytes();
    let first = *bytes.first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    if let Some(hex) = value.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = value.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    let int_like = value
        .strip_prefix(['-', '+'])
        .unwrap_or(value)
        .bytes()
        .all(|b| b.is_ascii_digit());
    if int_like {
        if let Ok(i) = value.parse::<i64>() {
            return Some(Number::from(i));
        }
        if let Ok(u) = value.parse::<u64>() {
            return Some(Number::from(u));
        }
    }
    // YAML 1.2 float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let re_ok = {
        let s = value.strip_prefix(['-', '+']).unwrap_or(value);
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mantissa_ok = match mantissa.split_once('.') {
            Some((a, b)) => {
                (!a.is_empty() || !b.is_empty())
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            }
            None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
        };
        let exp_ok = exp.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        });
        mantissa_ok && exp_ok
    };
    if !re_ok {
        return None;
    }
    value.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Node>, Vec<ParseProblem>) {
        parse_text(FileId(0), text, &Limits::default())
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let (node, problems) =
            parse("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: 0x1F\ng: .inf\nh: 1e3\n");
        assert!(problems.is_empty());
        let v = node.unwrap().to_json();
        assert_eq!(
            v,
            serde_json::json!({"a":1,"b":"1","c":1.5,"d":true,"e":null,"f":31,"g":".inf","h":1000.0})
        );
    }

    #[test]
    fn json_parses_with_positions() {
        let (node, problems) = parse("{\n  \"x\": {\"y\": [true]}\n}");
        assert!(problems.is_empty());
        let node = node.unwrap();
        let y = node.pointer("/x/y/0").unwrap();
        assert_eq!((y.span.line, y.span.col), (2, 15));
        let key = node.pointer_key_span("/x/y").unwrap();
        assert_eq!((key.line, key.col), (2, 9));
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_key() {
        let (_, problems) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, "yaml-duplicate-key");
        assert_eq!((problems[0].span.line, problems[0].span.col), (3, 1));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut prev = "a";
        for n in names {
            text.push_str(&format!("{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = n;
        }
        let (node, problems) = parse(&text);
        assert!(node.is_none());
        assert_eq!(problems[0].code, "yaml-too-large");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let (node, problems) = parse(&text);
        assert!(node.is_none());
        assert_eq!(problems[0].code, "yaml-too-deep");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (node, problems) = parse("a: [1, 2\nb: 3\n");
        assert!(node.is_none());
        assert_eq!(problems[0].code, "syntax");
        assert!(problems[0].span.line >= 1);
    }
}
