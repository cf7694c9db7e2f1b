//! `$ref` resolution across files.
//!
//! [`resolve`] returns the document with every resolvable `$ref` replaced by a copy of its target.
//! Copied nodes keep the spans of their definition, so a problem found in a referenced message points
//! into the file and line where that message is written, not at the `$ref`.
//!
//! * A `$ref` whose target is one of its own ancestors (a recursive schema such as a tree) is a
//!   legitimate cycle: it is left in place as a `$ref`, which both JSON Schema and AsyncAPI accept.
//! * A chain of `$ref`s that leads back to itself without ever reaching a value (`a → b → a`) has no
//!   meaning: it is reported as `ref-cycle` with the whole chain.
//! * Remote (`http://`, `https://`) references are refused with `ref-remote`: the compiler runs in CI,
//!   offline, and does no network I/O by design.
//! * Expansion is bounded ([`Limits::max_nodes`](crate::source::Limits)) so that references cannot be
//!   used to build an exponentially large document.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diagnostics::Diagnostic;
use crate::files::Files;
use crate::source::{unescape_pointer_token, FileId, Node, NodeValue};

/// Where a reference points: a file and a JSON pointer inside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub file: FileId,
    pub pointer: String,
}

/// The deepest the resolved tree may become through nested references.
const MAX_RESOLVED_DEPTH: usize = 512;

/// A document with its references replaced by their targets.
pub struct Resolved {
    pub root: Node,
    /// For every node copied from a reference target: where that target is defined, keyed by the
    /// node's span start. Lets later stages name a message after its component key, or tell which
    /// channel an AsyncAPI 3 operation's resolved `channel` is.
    pub origins: HashMap<(FileId, usize), Target>,
}

impl Resolved {
    /// Where `node` was defined, if it was reached through a reference.
    pub fn origin(&self, node: &Node) -> Option<&Target> {
        self.origins.get(&(node.span.file, node.span.start))
    }
}

/// Resolves every `$ref` in the document rooted at `root` (which lives in `file`).
pub fn resolve(files: &mut Files, file: FileId, diags: &mut Vec<Diagnostic>) -> Option<Resolved> {
    let root = files.tree(file)?.clone();
    let mut resolver = Resolver {
        files,
        diags,
        stack: Vec::new(),
        budget: 0,
        bytes: 0,
        reported_budget: false,
        reported_depth: false,
        origins: HashMap::new(),
        chain_ends: HashMap::new(),
    };
    resolver.stack.push(Target {
        file,
        pointer: String::new(),
    });
    let root = resolver.expand(&root, "", 0);
    Some(Resolved {
        root,
        origins: resolver.origins,
    })
}

/// If `node` is a Reference Object (`{$ref: "..."}`), its reference string.
pub fn ref_of(node: &Node) -> Option<&Node> {
    let r = node.get("$ref")?;
    r.as_str().map(|_| r)
}

struct Resolver<'a> {
    files: &'a mut Files,
    diags: &'a mut Vec<Diagnostic>,
    /// Targets being expanded (ancestors of the current node), to tell recursion from a chain cycle.
    stack: Vec<Target>,
    budget: usize,
    /// Estimated memory of the resolved tree built so far.
    bytes: u64,
    reported_budget: bool,
    reported_depth: bool,
    origins: HashMap<(FileId, usize), Target>,
    /// Where each reference already followed ends up (the first non-reference target).
    chain_ends: HashMap<Target, Target>,
}

impl Resolver<'_> {
    /// `pointer` is the JSON pointer of `node` in the resolved document, for diagnostics.
    fn expand(&mut self, node: &Node, pointer: &str, depth: usize) -> Node {
        self.budget += 1;
        self.bytes += node.own_bytes();
        if depth > MAX_RESOLVED_DEPTH {
            if !self.reported_depth {
                self.reported_depth = true;
                self.diags.push(
                    Diagnostic::error(
                        "ref-too-deep",
                        format!("`$ref`s nest deeper than {MAX_RESOLVED_DEPTH} levels here"),
                    )
                    .with_help(
                        "flatten the structure; no API description needs references this deep",
                    )
                    .at(node.span, pointer),
                );
            }
            return node.clone();
        }
        if self.over_budget(node, pointer) {
            return node.clone();
        }
        if let Some(reference) = ref_of(node) {
            return self.expand_ref(node, reference, pointer, depth);
        }
        let value = match &node.value {
            NodeValue::Seq(items) => NodeValue::Seq(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.expand(item, &format!("{pointer}/{i}"), depth + 1))
                    .collect(),
            ),
            NodeValue::Map(entries) => NodeValue::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let child =
                            format!("{pointer}/{}", crate::source::escape_pointer_token(&k.name));
                        (k.clone(), self.expand(v, &child, depth + 1))
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
        Node {
            value,
            span: node.span,
        }
    }

    fn over_budget(&mut self, node: &Node, pointer: &str) -> bool {
        let limits = &self.files.limits;
        let over = if self.budget > limits.max_nodes {
            format!("{} nodes", limits.max_nodes)
        } else if self.bytes > limits.max_resolved_bytes {
            format!(
                "{} MiB in memory",
                limits.max_resolved_bytes / (1024 * 1024)
            )
        } else {
            return false;
        };
        if !self.reported_budget {
            self.reported_budget = true;
            self.diags.push(
                Diagnostic::error(
                    "ref-expansion-too-large",
                    format!("resolving `$ref`s makes this document larger than {over}"),
                )
                .with_help(
                    "references nest too many times over; reference shared parts fewer times",
                )
                .at(node.span, pointer),
            );
        }
        true
    }

    fn expand_ref(&mut self, node: &Node, reference: &Node, pointer: &str, depth: usize) -> Node {
        // Follow the chain of pure references until a value is reached.
        let mut chain: Vec<Target> = Vec::new();
        let mut followed: Vec<Target> = Vec::new();
        let mut in_chain: HashSet<Target> = HashSet::new();
        let mut current_ref = reference.clone();
        let mut from_file = node.span.file;
        loop {
            let ref_pointer = format!("{pointer}/$ref");
            let Some(written) = self.locate(&current_ref, from_file, &ref_pointer) else {
                return node.clone();
            };
            // A chain already followed once is not followed again (long chains stay linear).
            let start = match self.chain_ends.get(&written) {
                Some(end) if end != &written => {
                    chain.push(written.clone());
                    end.clone()
                }
                _ => written.clone(),
            };
            // Where the pointer really lands, following the `$ref`s it crosses on the way.
            let (target, target_node) = match self.find(&start) {
                Ok(found) => found,
                Err(Miss::Reported) => return node.clone(),
                Err(Miss::Missing(at)) => {
                    let shown = self.describe(&start);
                    let hint = self.did_you_mean(&at);
                    let through =
                        if at.file != start.file || !at.pointer.starts_with(&start.pointer) {
                            format!(" (followed through `$ref`s to `{}`)", self.describe(&at))
                        } else {
                            String::new()
                        };
                    self.diags.push(
                        Diagnostic::error(
                            "ref-unresolved",
                            format!(
                                "this `$ref` points at `{shown}`, which does not exist{through}"
                            ),
                        )
                        .with_help(hint)
                        .at(current_ref.span, ref_pointer),
                    );
                    return node.clone();
                }
                Err(Miss::Cycle(crossed)) => {
                    let mut shown: Vec<String> = vec![self.describe(&start)];
                    shown.extend(crossed.iter().map(|t| self.describe(t)));
                    self.diags.push(
                        Diagnostic::error(
                            "ref-cycle",
                            format!(
                                "this `$ref`'s pointer passes through `$ref`s that lead back into themselves: {}",
                                shown.join(" → ")
                            ),
                        )
                        .with_help("make the `$ref`s on the way point at actual definitions")
                        .at(current_ref.span, ref_pointer),
                    );
                    return node.clone();
                }
            };
            if in_chain.contains(&target) {
                chain.push(target);
                let shown: Vec<String> = chain.iter().map(|t| self.describe(t)).collect();
                self.diags.push(
                    Diagnostic::error(
                        "ref-cycle",
                        format!(
                            "these `$ref`s point at each other and never reach a value: {}",
                            shown.join(" → ")
                        ),
                    )
                    .with_help("make one of them point at an actual definition")
                    .at(reference.span, ref_pointer),
                );
                return node.clone();
            }
            if self.stack.contains(&target) {
                // Recursion through an ancestor (a recursive schema): keep the reference.
                return node.clone();
            }
            followed.push(written);
            chain.push(target.clone());
            in_chain.insert(target.clone());
            if let Some(next) = ref_of(&target_node) {
                from_file = target_node.span.file;
                current_ref = next.clone();
                continue;
            }
            self.origins.insert(
                (target_node.span.file, target_node.span.start),
                target.clone(),
            );
            for hop in chain.iter().chain(&followed) {
                self.chain_ends.insert(hop.clone(), target.clone());
            }
            let depth_before = self.stack.len();
            self.stack.extend(chain);
            let expanded = self.expand(&target_node, pointer, depth + 1);
            self.stack.truncate(depth_before);
            return expanded;
        }
    }

    /// The node `target` names and where it really is, following every `$ref` its pointer crosses.
    fn find(&mut self, target: &Target) -> Result<(Target, Node), Miss> {
        let found = walk_pointer(self, target)?;
        let node = self.node_at(&found).ok_or(Miss::Missing(found.clone()))?;
        Ok((found, node))
    }

    /// Turns a `$ref` string into a target, loading the file it names. Reports what it cannot.
    fn locate(&mut self, reference: &Node, from_file: FileId, ref_pointer: &str) -> Option<Target> {
        let text = reference.as_str()?;
        if text.trim().is_empty() {
            self.diags.push(
                Diagnostic::error(
                    "ref-empty",
                    "this `$ref` is empty: it names neither a file nor a JSON pointer",
                )
                .with_help("write what it refers to, e.g. `#/components/messages/chatMessage` or `./common.yaml#/Chat`, or remove the `$ref`")
                .at(reference.span, ref_pointer),
            );
            return None;
        }
        let (file_part, fragment) = match text.split_once('#') {
            Some((f, frag)) => (f, frag),
            None => (text, ""),
        };
        let lower = file_part.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            self.diags.push(
                Diagnostic::error(
                    "ref-remote",
                    format!("remote `$ref` `{text}` cannot be resolved: the compiler works offline and never fetches URLs"),
                )
                .with_help("download the referenced document into the specs folder and refer to it by relative path (e.g. `./common/messages.yaml#/...`)")
                .at(reference.span, ref_pointer),
            );
            return None;
        }
        if file_part.contains("://") {
            self.diags.push(
                Diagnostic::error(
                    "ref-unsupported",
                    format!("`$ref` `{text}` uses a URL scheme the compiler does not read"),
                )
                .with_help("use a local reference (`#/components/...`) or a relative file path")
                .at(reference.span, ref_pointer),
            );
            return None;
        }
        if !fragment.is_empty() && !fragment.starts_with('/') {
            self.diags.push(
                Diagnostic::error(
                    "ref-invalid",
                    format!("the fragment of `$ref` `{text}` is not a JSON pointer"),
                )
                .with_help("write the fragment as a JSON pointer, e.g. `#/components/messages/chatMessage`")
                .at(reference.span, ref_pointer),
            );
            return None;
        }
        let fragment = percent_encoding::percent_decode_str(fragment)
            .decode_utf8_lossy()
            .into_owned();
        let file = if file_part.is_empty() {
            from_file
        } else {
            let base: PathBuf = self
                .files
                .path(from_file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let path = base.join(
                percent_encoding::percent_decode_str(file_part)
                    .decode_utf8_lossy()
                    .as_ref(),
            );
            let mut load_diags = Vec::new();
            let Some(id) = self.files.load(&path, &mut load_diags) else {
                // Not read (the compilation's budget is spent): the reason is in `load_diags`.
                self.diags.append(&mut load_diags);
                return None;
            };
            if self.files.is_outside_roots(id) {
                let root = self
                    .files
                    .root_of(self.files.path(from_file))
                    .map(|r| format!("`{}`, the folder the compiler was given", r.shown.display()))
                    .unwrap_or_else(|| "the folders the compiler was given".to_string());
                let resolved = std::fs::canonicalize(&path)
                    .ok()
                    .filter(|c| c != &path)
                    .map(|c| format!(" (it resolves to `{}`)", c.display()))
                    .unwrap_or_default();
                self.diags.push(
                    Diagnostic::error(
                        "ref-outside-root",
                        format!(
                            "this `$ref` names `{}`{resolved}, which is outside {root}; the compiler reads nothing outside the spec folders",
                            path.display()
                        ),
                    )
                    .with_help(crate::files::OUTSIDE_ROOT_HELP)
                    .at(reference.span, ref_pointer),
                );
                return None;
            }
            for d in load_diags {
                // A referenced file that cannot be read is reported at the `$ref`, where it is fixed.
                if d.code == "input-unreadable" {
                    self.diags.push(
                        Diagnostic::error(
                            "ref-unresolved",
                            format!("this `$ref` names `{}`, which cannot be read", path.display()),
                        )
                        .with_help("check the relative path; it is resolved from the folder of the file that holds the `$ref`")
                        .at(reference.span, ref_pointer),
                    );
                    return None;
                }
                if !self
                    .diags
                    .iter()
                    .any(|e| e.span == d.span && e.code == d.code)
                {
                    self.diags.push(d);
                }
            }
            id
        };
        Some(Target {
            file,
            pointer: fragment,
        })
    }

    fn node_at(&self, target: &Target) -> Option<Node> {
        self.files
            .tree(target.file)?
            .pointer(&target.pointer)
            .cloned()
    }

    fn describe(&self, target: &Target) -> String {
        format!(
            "{}#{}",
            self.files.path(target.file).display(),
            target.pointer
        )
    }

    /// Names the existing siblings of a missing target, which usually reveals the typo.
    fn did_you_mean(&self, target: &Target) -> String {
        let (parent, last) = target
            .pointer
            .rsplit_once('/')
            .unwrap_or(("", &target.pointer));
        let siblings: Vec<String> = self
            .files
            .tree(target.file)
            .and_then(|t| t.pointer(parent))
            .map(|p| p.entries().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default();
        let last = unescape_pointer_token(last);
        match crate::suggest::closest(&last, siblings.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`? (defined under `{parent}`)"),
            None if !siblings.is_empty() => format!(
                "`{parent}` defines: {}",
                siblings
                    .iter()
                    .take(10)
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "check the path and the pointer after `#`".to_string(),
        }
    }
}

/// Why a pointer could not be followed.
enum Miss {
    /// Nothing at this (real) location.
    Missing(Target),
    /// The `$ref`s crossed on the way lead back into themselves; the ones crossed, in order.
    Cycle(Vec<Target>),
    /// A crossed `$ref` could not be located; that was already reported.
    Reported,
}

/// What following a pointer needs: the trees, and a way to turn a crossed `$ref` into a target.
trait PointerSpace {
    fn tree(&self, file: FileId) -> Option<&Node>;
    /// The target of the reference string `reference`, written in `file` at `pointer`.
    fn locate_crossed(&mut self, reference: &Node, file: FileId, pointer: &str) -> Option<Target>;
}

impl PointerSpace for Resolver<'_> {
    fn tree(&self, file: FileId) -> Option<&Node> {
        self.files.tree(file)
    }
    fn locate_crossed(&mut self, reference: &Node, file: FileId, pointer: &str) -> Option<Target> {
        self.locate(reference, file, pointer)
    }
}

/// Already-loaded files only, for rules that run after resolution.
struct Loaded<'a>(&'a Files);

impl PointerSpace for Loaded<'_> {
    fn tree(&self, file: FileId) -> Option<&Node> {
        self.0.tree(file)
    }
    fn locate_crossed(&mut self, reference: &Node, file: FileId, _pointer: &str) -> Option<Target> {
        let text = reference.as_str()?;
        let (file_part, fragment) = text.split_once('#').unwrap_or((text, ""));
        let file = if file_part.is_empty() {
            file
        } else {
            let base = self
                .0
                .path(file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let path = base.join(
                percent_encoding::percent_decode_str(file_part)
                    .decode_utf8_lossy()
                    .as_ref(),
            );
            self.0.sources.lookup(&crate::files::normalize(&path))?
        };
        Some(Target {
            file,
            pointer: percent_encoding::percent_decode_str(fragment)
                .decode_utf8_lossy()
                .into_owned(),
        })
    }
}

/// Most `$ref`s one pointer may cross, and the longest pointer crossing may build.
const MAX_CROSSINGS: usize = 256;

/// Follows `target`'s JSON pointer token by token. When the node reached so far is a Reference
/// Object and tokens remain (`#/channels/echo/messages/m` where `channels/echo` is
/// `{$ref: '#/components/channels/echo'}`), the pointer continues inside the `$ref`'s target, as the
/// AsyncAPI tooling resolves it. Returns where the pointer really lands (which may itself be a
/// `$ref`: following chains is the caller's business).
fn walk_pointer(space: &mut impl PointerSpace, target: &Target) -> Result<Target, Miss> {
    let mut file = target.file;
    let mut at = String::new();
    let mut rest: std::collections::VecDeque<String> = pointer_tokens(&target.pointer).collect();
    let mut crossed: Vec<Target> = Vec::new();
    let mut states: HashSet<(FileId, String, usize)> = HashSet::new();
    loop {
        let Some(token) = rest.front() else {
            return Ok(Target { file, pointer: at });
        };
        let here = Target {
            file,
            pointer: at.clone(),
        };
        let node = space
            .tree(file)
            .and_then(|t| t.pointer(&at))
            .ok_or(Miss::Missing(here.clone()))?;
        let crossing = if token == "$ref" {
            None
        } else {
            ref_of(node).cloned()
        };
        match crossing {
            Some(reference) => {
                crossed.push(here);
                if !states.insert((file, at.clone(), rest.len()))
                    || crossed.len() > MAX_CROSSINGS
                    || rest.len() > MAX_CROSSINGS
                {
                    return Err(Miss::Cycle(crossed));
                }
                let next = space
                    .locate_crossed(&reference, file, &format!("{at}/$ref"))
                    .ok_or(Miss::Reported)?;
                for token in pointer_tokens(&next.pointer).rev() {
                    rest.push_front(token);
                }
                file = next.file;
                at = String::new();
            }
            None => {
                let token = rest.pop_front().unwrap_or_default();
                let child = format!("{at}/{}", crate::source::escape_pointer_token(&token));
                if node
                    .pointer(&format!("/{}", crate::source::escape_pointer_token(&token)))
                    .is_none()
                {
                    return Err(Miss::Missing(Target {
                        file,
                        pointer: child,
                    }));
                }
                at = child;
            }
        }
    }
}

/// The unescaped tokens of a JSON pointer (`/a~1b/c` → `a/b`, `c`).
fn pointer_tokens(pointer: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    pointer
        .strip_prefix('/')
        .map(|rest| rest.split('/'))
        .into_iter()
        .flatten()
        .map(unescape_pointer_token)
}

/// The target of a reference node in the raw (unresolved) tree of `file`, following chains of
/// references and the references its pointer crosses. Used by rules that compare *where*
/// references point (AsyncAPI 3 operations must use their channel's messages).
pub fn target_of(files: &Files, node: &Node) -> Option<Target> {
    let reference = ref_of(node)?;
    let target = Loaded(files).locate_crossed(reference, node.span.file, "")?;
    follow(files, &target)
}

/// Where `target` really is: the definition reached by following the `$ref`s its pointer crosses
/// and then the chain of `$ref`s it names, if any. `None` when it leads nowhere.
pub fn follow(files: &Files, target: &Target) -> Option<Target> {
    let mut space = Loaded(files);
    let mut target = walk_pointer(&mut space, target).ok()?;
    for _ in 0..MAX_CROSSINGS {
        let node = files.tree(target.file)?.pointer(&target.pointer)?;
        let Some(reference) = ref_of(node) else {
            return Some(target);
        };
        let next = space.locate_crossed(reference, target.file, "")?;
        target = walk_pointer(&mut space, &next).ok()?;
    }
    None
}
