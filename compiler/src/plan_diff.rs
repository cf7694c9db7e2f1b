//! What changed between two plans, and which live connections each change ends.
//!
//! The runtime applies a new plan the way a running topology applies a new configuration: it
//! computes a [`PlanDiff`], swaps the route table, and closes only the connections a change names
//! (an API removed or no longer admitted by its lifecycle, a route removed). Everything else keeps
//! running: a connection keeps the route it matched, so a changed backend or limit applies to new
//! connections only. The same diff is a review aid: `compile --diff OLD_PLAN.json specs/` prints
//! it for a CI job. Startup is the diff from no plan at all.
//!
//! The diff is pure (no I/O, no clock) and names no backend address: it is shown on the admin
//! listener, which must not disclose backend hosts.
//!
//! ```
//! use portico_compiler::plan::Plan;
//! use portico_compiler::plan_diff::PlanDiff;
//! let empty = Plan::new(vec![]);
//! let diff = PlanDiff::new(Some(&empty), &empty);
//! assert!(diff.changes.is_empty());
//! ```

use serde::Serialize;

use crate::plan::{Lifecycle, Plan, PlanApi, Route};

/// The changes from one plan to the next, APIs in the new plan's order, then removed ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDiff {
    /// `None` when there was no plan before (startup).
    pub old_hash: Option<String>,
    pub new_hash: String,
    pub changes: Vec<Change>,
}

/// One change, about an API as a whole (`route: None`) or one of its routes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The API's context: its key in the runtime's registry and metrics.
    pub api: String,
    pub title: String,
    pub version: String,
    /// The route's public pattern, for a route-level change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub kind: ChangeKind,
    /// Why live connections of this API (or route) are closed by this change (with 1001), or
    /// `None` when they keep running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ChangeKind {
    ApiAdded,
    ApiRemoved,
    /// The lifecycle state changed.
    Lifecycle {
        from: Lifecycle,
        to: Lifecycle,
    },
    /// The production or sandbox endpoint changed (addresses are not shown).
    Backend,
    /// Message size, connection or idle limits changed.
    Limits,
    /// The context clients may use without a version changed.
    DefaultContext,
    RouteAdded,
    RouteRemoved,
    /// The route now goes elsewhere on the backend (its URL mapping changed).
    BackendPath,
    /// The credential or scopes the route requires changed.
    Auth,
    /// The messages (and their schemas or examples) of the route changed.
    Messages,
    /// Something else about the route changed (parameters, channels).
    Route,
}

impl ChangeKind {
    fn describe(&self) -> String {
        match self {
            ChangeKind::ApiAdded => "API added".into(),
            ChangeKind::ApiRemoved => "API removed".into(),
            ChangeKind::Lifecycle { from, to } => {
                format!("lifecycle {} → {}", from.as_str(), to.as_str())
            }
            ChangeKind::Backend => "backend endpoint changed".into(),
            ChangeKind::Limits => "limits changed".into(),
            ChangeKind::DefaultContext => "default-version context changed".into(),
            ChangeKind::RouteAdded => "route added".into(),
            ChangeKind::RouteRemoved => "route removed".into(),
            ChangeKind::BackendPath => "re-pointed (backend path changed)".into(),
            ChangeKind::Auth => "credential or scopes changed".into(),
            ChangeKind::Messages => "messages changed".into(),
            ChangeKind::Route => "route changed".into(),
        }
    }
}

/// Why an API in `lifecycle` is not served: the close reason of a change to this state.
fn not_admitted_reason(lifecycle: Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Blocked => "the API is blocked",
        Lifecycle::Retired => "the API is retired",
        _ => "the API is not published",
    }
}

impl PlanDiff {
    /// The changes from `old` (none at startup) to `new`.
    pub fn new(old: Option<&Plan>, new: &Plan) -> PlanDiff {
        let mut changes = Vec::new();
        let empty = Vec::new();
        let old_apis = old.map(|p| &p.apis).unwrap_or(&empty);
        for api in &new.apis {
            match old_apis.iter().find(|o| o.context == api.context) {
                None => changes.push(change(api, None, ChangeKind::ApiAdded, None)),
                Some(before) => diff_api(before, api, &mut changes),
            }
        }
        for before in old_apis {
            if !new.apis.iter().any(|a| a.context == before.context) {
                changes.push(change(
                    before,
                    None,
                    ChangeKind::ApiRemoved,
                    Some("the API was removed"),
                ));
            }
        }
        PlanDiff {
            old_hash: old.map(|p| p.hash.clone()),
            new_hash: new.hash.clone(),
            changes,
        }
    }

    /// Whether any live connection is closed by this diff.
    pub fn closes_connections(&self) -> bool {
        self.changes.iter().any(|c| c.closes.is_some())
    }

    /// The diff for people: one line per change, then a summary.
    pub fn render_human(&self) -> String {
        let mut out = format!(
            "plan {} → {}\n",
            self.old_hash.as_deref().unwrap_or("(none)"),
            self.new_hash
        );
        for c in &self.changes {
            let sign = match c.kind {
                ChangeKind::ApiAdded | ChangeKind::RouteAdded => '+',
                ChangeKind::ApiRemoved | ChangeKind::RouteRemoved => '-',
                _ => '~',
            };
            let subject = match &c.route {
                Some(route) => format!("route {route}"),
                None => format!("api   {} ({} {})", c.api, c.title, c.version),
            };
            out.push_str(&format!("{sign} {subject}: {}", c.kind.describe()));
            if let Some(why) = &c.closes {
                out.push_str(&format!(" — closes live connections ({why})"));
            }
            out.push('\n');
        }
        let closing = self.changes.iter().filter(|c| c.closes.is_some()).count();
        out.push_str(&match self.changes.len() {
            0 => "no changes\n".to_string(),
            n => format!(
                "{n} change{}, {closing} of which close{} live connections\n",
                if n == 1 { "" } else { "s" },
                if closing == 1 { "s" } else { "" }
            ),
        });
        out
    }
}

fn change(api: &PlanApi, route: Option<&Route>, kind: ChangeKind, closes: Option<&str>) -> Change {
    Change {
        api: api.context.clone(),
        title: api.title.clone(),
        version: api.version.clone(),
        route: route.map(|r| r.pattern.clone()),
        kind,
        closes: closes.map(str::to_string),
    }
}

fn diff_api(before: &PlanApi, after: &PlanApi, changes: &mut Vec<Change>) {
    if before.lifecycle != after.lifecycle {
        let closes = (before.lifecycle.admits() && !after.lifecycle.admits())
            .then(|| not_admitted_reason(after.lifecycle));
        changes.push(change(
            after,
            None,
            ChangeKind::Lifecycle {
                from: before.lifecycle,
                to: after.lifecycle,
            },
            closes,
        ));
    }
    if before.endpoints != after.endpoints {
        changes.push(change(after, None, ChangeKind::Backend, None));
    }
    if before.limits != after.limits {
        changes.push(change(after, None, ChangeKind::Limits, None));
    }
    if before.default_context != after.default_context {
        changes.push(change(after, None, ChangeKind::DefaultContext, None));
    }
    for route in &after.routes {
        let Some(old) = before.routes.iter().find(|r| r.pattern == route.pattern) else {
            changes.push(change(after, Some(route), ChangeKind::RouteAdded, None));
            continue;
        };
        for kind in route_changes(old, route) {
            changes.push(change(after, Some(route), kind, None));
        }
    }
    for old in &before.routes {
        if !after.routes.iter().any(|r| r.pattern == old.pattern) {
            changes.push(change(
                after,
                Some(old),
                ChangeKind::RouteRemoved,
                Some("the route was removed"),
            ));
        }
    }
}

fn route_changes(old: &Route, new: &Route) -> Vec<ChangeKind> {
    let mut kinds = Vec::new();
    if old.backend_path != new.backend_path {
        kinds.push(ChangeKind::BackendPath);
    }
    if old.auth != new.auth || old.scopes != new.scopes {
        kinds.push(ChangeKind::Auth);
    }
    if old.messages != new.messages {
        kinds.push(ChangeKind::Messages);
    }
    if old.parameters != new.parameters || old.channels != new.channels || old.topic != new.topic {
        kinds.push(ChangeKind::Route);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{route_kind, ApiLimits, Endpoints, RouteAuth, RouteMessages, SourceRef};

    fn route(context: &str, topic: &str) -> Route {
        let pattern = format!("{context}{topic}");
        Route {
            topic: topic.to_string(),
            kind: route_kind(&pattern),
            pattern,
            backend_path: topic.to_string(),
            parameters: vec![],
            channels: vec![topic.to_string()],
            messages: RouteMessages::default(),
            scopes: vec![],
            auth: RouteAuth::Required,
            handshake: None,
            throttling: None,
            validation: None,
            security: Default::default(),
        }
    }

    fn api(context: &str, topics: &[&str]) -> PlanApi {
        PlanApi {
            name: "chat-api".into(),
            title: "Chat API".into(),
            version: "1.0.0".into(),
            context: context.into(),
            context_template: context.into(),
            default_context: None,
            lifecycle: Lifecycle::Published,
            endpoints: Endpoints {
                production: "ws://backend.internal:8080".into(),
                sandbox: None,
            },
            limits: ApiLimits::default(),
            origins: vec![],
            throttling: None,
            source: SourceRef {
                file: "chat.yaml".into(),
                sha256: "sha256:0".into(),
            },
            routes: topics.iter().map(|t| route(context, t)).collect(),
        }
    }

    fn kinds(diff: &PlanDiff) -> Vec<(Option<&str>, &ChangeKind, bool)> {
        diff.changes
            .iter()
            .map(|c| (c.route.as_deref(), &c.kind, c.closes.is_some()))
            .collect()
    }

    #[test]
    fn startup_adds_every_api_and_closes_nothing() {
        let new = Plan::new(vec![api("/chat/1", &["/a"]), api("/news/1", &["/b"])]);
        let diff = PlanDiff::new(None, &new);
        assert_eq!(diff.old_hash, None);
        assert_eq!(diff.changes.len(), 2);
        assert!(diff.changes.iter().all(|c| c.kind == ChangeKind::ApiAdded));
        assert!(!diff.closes_connections());
    }

    #[test]
    fn the_same_plan_has_no_changes() {
        let plan = Plan::new(vec![api("/chat/1", &["/a", "/b"])]);
        let diff = PlanDiff::new(Some(&plan), &plan.clone());
        assert!(diff.changes.is_empty());
        assert!(diff.render_human().ends_with("no changes\n"));
    }

    #[test]
    fn a_removed_route_closes_only_that_route() {
        let old = Plan::new(vec![api("/chat/1", &["/a", "/b"])]);
        let new = Plan::new(vec![api("/chat/1", &["/a", "/c"])]);
        let diff = PlanDiff::new(Some(&old), &new);
        assert_eq!(
            kinds(&diff),
            [
                (Some("/chat/1/c"), &ChangeKind::RouteAdded, false),
                (Some("/chat/1/b"), &ChangeKind::RouteRemoved, true),
            ]
        );
    }

    #[test]
    fn a_removed_api_closes_the_api() {
        let old = Plan::new(vec![api("/chat/1", &["/a"]), api("/news/1", &["/b"])]);
        let new = Plan::new(vec![api("/chat/1", &["/a"])]);
        let diff = PlanDiff::new(Some(&old), &new);
        assert_eq!(kinds(&diff), [(None, &ChangeKind::ApiRemoved, true)]);
        assert_eq!(diff.changes[0].api, "/news/1");
    }

    #[test]
    fn lifecycle_closes_only_when_it_stops_admitting() {
        let old = Plan::new(vec![api("/chat/1", &["/a"])]);
        for (to, closes) in [
            (Lifecycle::Deprecated, false),
            (Lifecycle::Prototyped, false),
            (Lifecycle::Blocked, true),
            (Lifecycle::Retired, true),
            (Lifecycle::Created, true),
        ] {
            let mut changed = api("/chat/1", &["/a"]);
            changed.lifecycle = to;
            let diff = PlanDiff::new(Some(&old), &Plan::new(vec![changed]));
            assert_eq!(diff.changes.len(), 1, "{to:?}");
            assert_eq!(diff.changes[0].closes.is_some(), closes, "{to:?}");
        }
        // Back from BLOCKED to PUBLISHED closes nothing.
        let mut blocked = api("/chat/1", &["/a"]);
        blocked.lifecycle = Lifecycle::Blocked;
        let diff = PlanDiff::new(Some(&Plan::new(vec![blocked])), &old);
        assert!(!diff.closes_connections());
    }

    #[test]
    fn backend_limits_and_route_changes_keep_connections() {
        let old = Plan::new(vec![api("/chat/1", &["/a"])]);
        let mut changed = api("/chat/1", &["/a"]);
        changed.endpoints.production = "ws://elsewhere.internal:9".into();
        changed.limits.max_connections = Some(5);
        changed.routes[0].backend_path = "/elsewhere".into();
        changed.routes[0].scopes = vec!["chat:write".into()];
        let diff = PlanDiff::new(Some(&old), &Plan::new(vec![changed]));
        assert_eq!(
            kinds(&diff),
            [
                (None, &ChangeKind::Backend, false),
                (None, &ChangeKind::Limits, false),
                (Some("/chat/1/a"), &ChangeKind::BackendPath, false),
                (Some("/chat/1/a"), &ChangeKind::Auth, false),
            ]
        );
        let text = diff.render_human();
        assert!(!text.contains("elsewhere.internal"), "{text}");
        assert!(!serde_json::to_string(&diff)
            .unwrap()
            .contains("elsewhere.internal"));
    }

    #[test]
    fn renders_for_people_and_machines() {
        let old = Plan::new(vec![api("/chat/1", &["/a", "/b"])]);
        let new = Plan::new(vec![api("/chat/1", &["/a"])]);
        let diff = PlanDiff::new(Some(&old), &new);
        let text = diff.render_human();
        assert!(text.contains("- route /chat/1/b: route removed — closes live connections (the route was removed)"), "{text}");
        assert!(
            text.ends_with("1 change, 1 of which closes live connections\n"),
            "{text}"
        );
        let json = serde_json::to_value(&diff).unwrap();
        assert_eq!(json["changes"][0]["kind"]["type"], "routeRemoved");
        assert_eq!(json["changes"][0]["closes"], "the route was removed");
    }
}
